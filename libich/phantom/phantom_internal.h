/* Internal: drawing one phantom slice. phantom.c (options, files) calls
 * ich_phantom_draw() (draw.c), which puts together the patient's anatomy
 * (anatomy.c, skullbase.c), the series' bleeds (bleeds.c) and the scanner
 * (scanner.c). */
#ifndef ICH_INTERNAL_PHANTOM_H
#define ICH_INTERNAL_PHANTOM_H

#include <math.h>
#include <stdint.h>

#include "core/rng.h"
#include "ich/phantom.h"

/* Same results on every machine: never fuse a*b+c into an FMA in the
 * phantom's code (each of its files says so too). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

/* The field of view is fixed in mm, so a smaller image is the same head at
 * a coarser pixel spacing; the series always spans the head's height. */
#define ICH_PHANTOM_FOV_MM 230.0
#define ICH_PHANTOM_HEIGHT_MM 120.0

#define PH_PI 3.14159265358979323846
#define PH_NANG 2048    /* angles tabulated per slice: 0.3 mm at 100 mm, 32 KB (L1) */
#define PH_MAX_SULCI 64 /* sulci around the brain */
#define PH_MAX_BLEEDS 3
#define PH_GRID 48      /* texture lattice per slice: PH_GRID^2 cells... */
#define PH_TEXTURE_MM 128.0 /* ...over +-128 mm of head coordinates (5.3 mm cells) */

/* Stream tags: the `a` argument of ich_rng_init is tag << 32 | patient. */
enum { TAG_ANATOMY = 1, TAG_STUDY = 2, TAG_BLEEDS = 3, TAG_NOISE = 4, TAG_TEXTURE = 5 };

/* What a pixel is, finer than the public ich_phantom_tissue: the bleeds
 * look at it to decide where blood can go. */
enum tissue {
    T_AIR, T_SCALP, T_FAT, T_BONE, T_SINUS, T_HEADREST,
    T_SURFACE_CSF, /* the thin CSF layer under the inner table */
    T_SULCUS,      /* sulci and fissures: subarachnoid CSF */
    T_CISTERN,     /* basal cisterns: subarachnoid CSF */
    T_VENTRICLE, T_DURA, T_CALC, T_GREY, T_WHITE
};

enum { PH_KERNEL_STANDARD, PH_KERNEL_SOFT, PH_KERNEL_SHARP };

enum { B_EPIDURAL, B_PARENCHYMAL, B_VENTRICULAR, B_SUBARACHNOID, B_SUBDURAL };

/* What varies from one patient to the next (the patient's stream). */
typedef struct anatomy {
    double half_width, half_length; /* outer skull semi-axes, mm */
    double angle, shift_x, shift_y; /* position in the scanner (the study's stream) */
    double skull_mm, skull_amp[3], skull_phase[3];
    double outline_amp, outline_phase;
    double diploe_hu, table_hu;
    double scalp_mm;
    double grey_hu, white_hu, csf_hu;
    double cortex_mm, cortex_phase[2];
    double age;             /* 0 young .. 1 old: atrophy widens sulci and ventricles */
    double ventricle_scale;
    double surface_csf_mm;  /* CSF under the inner table, wider with atrophy */
    double coronal, lambdoid; /* suture angles from the lateral axis, rad */
    double pineal_calc, plexus_calc, falx_calc; /* calcification HU (0: none) */
    double noise_factor;    /* the study's noise level relative to options.noise */
    double headrest_gap;    /* mm between the occiput and the headrest */
    int kernel;             /* PH_KERNEL_*: the study's reconstruction kernel */
    double padding_hu;      /* HU outside the reconstruction circle (0: air there) */
    double t_offset, t_span;/* the series' first level and its reach, in heights */
    double cup_hu;          /* cupping: HU added at the brain's periphery */
    int sulci;
    double sulcus_angle[PH_MAX_SULCI], sulcus_drift[PH_MAX_SULCI], sulcus_depth[PH_MAX_SULCI];
    double sulcus_width[PH_MAX_SULCI], sulcus_wiggle[PH_MAX_SULCI];
} anatomy;

/* One hemorrhage of a series (the series' stream). */
typedef struct bleed {
    int type;              /* B_* */
    double hu;             /* blood density */
    double t0, half_t;     /* z centre and half extent, in units of the height */
    double phi, alpha;     /* direction and angular half extent (EDH, SDH, SAH) */
    int side;              /* EDH: +1 the +x side, -1 the other */
    double lo, hi;         /* EDH: its ends, at most the sutures (mirrored angles) */
    double thick;          /* greatest thickness, mm (EDH, SDH) */
    int basal;             /* SAH in the basal cisterns instead of a convexity */
    double reach;          /* basal SAH: radius of the region, mm */
    double px, py, radius; /* IPH centre (head coords) and radius, mm */
    double lobe[2], lobe_cos[2], lobe_sin[2]; /* IPH irregular outline */
    double rim;            /* IPH edema rim, mm (0: none) */
    double level;          /* IVH: blood below (posterior to) this, mm */
    double push;           /* mass effect: midline shift at the widest, mm (signed, x) */
} bleed;

/* A bleed as it appears in one slice: its size scaled by the z profile. */
typedef struct bleed_slice {
    const bleed *b;
    double thick, alpha, reach, radius, rim, limit;
} bleed_slice;

/* What a slice knows about one direction from the head's centre. */
typedef struct angle_row {
    float edge, skull, cortex; /* outer skull edge, skull and cortex thickness, mm */
    int32_t nearest;           /* the nearest sulcus */
} angle_row;

/* Everything about one slice that does not depend on the pixel. */
typedef struct slice_geo {
    double t;                    /* height from the skull base (0) to the vertex (1) */
    double scale;                /* the head's cross-section here, relative to its widest */
    double cosr, sinr;           /* tilt */
    double edge_max;             /* farthest outer skull edge, mm */
    double ventricle;            /* size of the lateral ventricles here (0: none) */
    double shift;                /* midline shift here, mm (mass effect) */
    double squeeze;              /* ventricle on the shifted side compressed by this */
    double falx_bow;             /* 1 / (0.8 * the head's half length)^2 */
    angle_row ang[PH_NANG];      /* per direction, together: one cache line per look-up */
    double sulcus_angle[PH_MAX_SULCI];
    double sulcus_depth[PH_MAX_SULCI], sulcus_width[PH_MAX_SULCI]; /* at this level, mm */
    int sulci;
    int bleeds;
    bleed_slice bleed[PH_MAX_BLEEDS];
    float texture[PH_GRID + 1][PH_GRID + 1]; /* smooth random field, about -1..1 */
    float grain[PH_GRID + 1][PH_GRID + 1];   /* another field, for clots and bone */
    int32_t ring[3 * 4096];      /* the kernel's rows (columns <= 4096) */
    int streaks;                 /* beam-hardening streaks: lines a x + b y = c */
    double streak_a[4], streak_b[4], streak_c[4], streak_hu[4];
} slice_geo;

/* A pixel: tissue class, HU before the bleeds, and where it lies. */
typedef struct pixel {
    int tissue;
    double hu;
    double theta;  /* direction from the head centre */
    double inside; /* depth below the inner table, mm (negative: not inside) */
} pixel;

/* ---- draw.c / phantom.c ---- */

/* Pixel spacing (mm, square pixels) and slice thickness of a phantom. */
double ich_phantom_spacing(const ich_phantom_options *o);
double ich_phantom_thickness(const ich_phantom_options *o);

/* Draw slice `slice` of study `study` of patient `patient` (already checked)
 * into `stored` (rows * columns stored values, HU = stored * 1 + *intercept)
 * and set blood_pixels[type] to the number of pixels of each hemorrhage type
 * (epidural, intraparenchymal, intraventricular, subarachnoid, subdural)
 * in it. `tissue` (may be NULL) receives each pixel's ich_phantom_tissue;
 * `stored` may be NULL when only the tissues are wanted. *intercept (may
 * be NULL) receives the rescale intercept. ICH_ERR_NO_MEMORY or ICH_OK. */
ich_status ich_phantom_draw(const ich_phantom_options *o, int32_t patient, int32_t study,
                            int32_t slice, int16_t *stored, uint8_t *tissue,
                            int64_t blood_pixels[5], double *intercept);

/* Fewest pixels of a type for its label to be positive in a slice. */
int64_t ich_phantom_min_pixels(const ich_phantom_options *o);

/* ---- shared helpers (anatomy.c) ---- */

ich_rng ich_phantom_stream(uint64_t seed, int tag, int32_t patient, uint64_t b);

/* ---- Small helpers used per pixel: inline, since the compiler cannot
 * inline across files and a 512x512 slice calls them a million times. ---- */

/* To [-pi, pi). */
static inline double ich_phantom_wrap(double a)
{
    while (a >= PH_PI)
        a -= 2 * PH_PI;
    while (a < -PH_PI)
        a += 2 * PH_PI;
    return a;
}

/* atan2 from + - * / only (deterministic, within about 1e-5 rad). */
static inline double ich_phantom_atan2(double y, double x)
{
    double ax = fabs(x), ay = fabs(y);
    double mx = ax > ay ? ax : ay, mn = ax > ay ? ay : ax;
    double a = mx > 0 ? mn / mx : 0, s = a * a;
    double r = ((-0.0464964749 * s + 0.15931422) * s - 0.327622764) * s * a + a;
    if (ay > ax)
        r = PH_PI / 2 - r;
    if (x < 0)
        r = PH_PI - r;
    return y < 0 ? -r : r;
}

static inline int ich_phantom_angle_index(double theta)
{
    int i = (int)((theta + PH_PI) * (PH_NANG / (2 * PH_PI)));
    return i & (PH_NANG - 1);
}

/* theta folded onto the +x side: front negative, back positive. */
static inline double ich_phantom_lateral(double theta)
{
    /* theta in (-pi/2, pi/2] is already on the +x side; the -x side is
     * mirrored across the y axis, so front (y < 0) stays negative. */
    if (theta > PH_PI / 2)
        return PH_PI - theta;
    if (theta < -PH_PI / 2)
        return -PH_PI - theta;
    return theta;
}

/* A smooth field at head coords (x, y) mm: its lattice spans
 * +-PH_TEXTURE_MM, which holds the whole head (0 beyond, never reached). */
static inline double ich_phantom_texture(const float field[PH_GRID + 1][PH_GRID + 1], double x,
                                         double y)
{
    const double k = PH_GRID / (2 * PH_TEXTURE_MM), h = 0.5 * PH_GRID;
    double u = x * k + h, v = y * k + h;
    if (!(u >= 0 && v >= 0 && u < PH_GRID && v < PH_GRID))
        return 0;
    int i = (int)u, j = (int)v;
    double fu = u - i, fv = v - j;
    double top = field[i][j] + (field[i][j + 1] - field[i][j]) * fv;
    double bottom = field[i + 1][j] + (field[i + 1][j + 1] - field[i + 1][j]) * fv;
    return top + (bottom - top) * fu;
}

/* Two samples of white noise of sd 1 from one generator step: each the
 * sum of two 16-bit uniforms (triangular), centred and scaled. Integer
 * arithmetic; the kernel's sum of nine makes it close to normal. */
static inline void ich_phantom_noise2(ich_rng *rng, double *a, double *b)
{
    uint64_t x = ich_rng_next(rng);
    int64_t s = (int64_t)(x & 0xFFFF) + (int64_t)(x >> 16 & 0xFFFF) - 65535;
    int64_t t = (int64_t)(x >> 32 & 0xFFFF) + (int64_t)(x >> 48) - 65535;
    const double scale = 2.4494897427831781 / 65536.0; /* sqrt(6) / 2^16 */
    *a = (double)s * scale;
    *b = (double)t * scale;
}

/* ---- anatomy.c ---- */

void ich_phantom_make_anatomy(const ich_phantom_options *o, int32_t patient, int32_t study,
                              anatomy *A);
double ich_phantom_head_scale(double t);
double ich_phantom_ventricle_size(const anatomy *A, double t);
void ich_phantom_make_tables(const anatomy *A, slice_geo *g);
void ich_phantom_make_texture(uint64_t seed, int32_t patient, slice_geo *g);
void ich_phantom_anatomy_at(const anatomy *A, const slice_geo *g, double x, double y, pixel *p);

/* ---- skullbase.c ---- */

/* Orbits, sinuses, mastoids, petrous bone, clivus: 1 when (x, y) is one of
 * them at this level (p filled), else 0. `inside` is the depth below the
 * inner table. */
int ich_phantom_skull_base(const anatomy *A, const slice_geo *g, double x, double y,
                           double inside, pixel *p);
/* Midbrain, its cisterns and the temporal horns (0.2 <= t < 0.36): 1 when
 * (x, y) is one of them (p filled), else 0. */
int ich_phantom_midbrain(const anatomy *A, const slice_geo *g, double x, double y, pixel *p);

/* ---- bleeds.c ---- */

int ich_phantom_make_bleeds(const ich_phantom_options *o, const anatomy *A, int32_t patient,
                            int32_t study, bleed out[PH_MAX_BLEEDS]);
void ich_phantom_slice_bleeds(const bleed *bleeds, int n, slice_geo *g);
/* Does bleed `s` cover the pixel? Sets *edema when it is in an IPH's rim. */
int ich_phantom_bleed_covers(const bleed_slice *s, const pixel *p, double x, double y,
                             double gy, int *edema);

/* ---- scanner.c ---- */

/* The rescale intercept of a series. */
double ich_phantom_intercept(const ich_phantom_options *o, int32_t patient, int32_t study);
/* Beam hardening at the skull base (streaks, dark bands): `hu` plus the HU
 * they add at head coords (x, y), `inside` mm below the inner table (>= 0).
 * Cupping, which every level has, is computed in draw.c's pixel loop. */
double ich_phantom_artifacts(const slice_geo *g, double x, double y, double inside, double hu);
/* The streak lines of a slice (beam hardening from the petrous bones). */
void ich_phantom_make_streaks(uint64_t seed, int32_t patient, int32_t study, slice_geo *g);
/* The headrest behind the occiput: `out` mm beyond the scalp at head y
 * coordinate y; sets p when the headrest is there. */
void ich_phantom_headrest(const anatomy *A, const slice_geo *g, double out, double y, pixel *p);
/* The reconstruction kernel `kernel` (PH_KERNEL_*) applied to stored
 * values in place (partial volume, correlated noise); `ring` holds
 * 3 * columns values. */
void ich_phantom_kernel(int16_t *image, int32_t *ring, int32_t rows, int32_t columns,
                        int kernel);
/* The white-noise sd that gives sd `target` after ich_phantom_kernel(). */
double ich_phantom_white_sd(double target, int kernel);

#endif
