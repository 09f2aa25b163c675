/* Drawing one phantom slice: the head's anatomy, then the bleeds, then the
 * scanner noise, in Hounsfield units.
 *
 * Three independent random streams, so that changing one option leaves the
 * rest alone: the anatomy comes from the patient's stream (and the study's,
 * for the positioning in the scanner), the bleeds from the series' stream,
 * the noise from the slice's stream. The same patient with prevalence 0 and
 * 1 therefore has the same head, pixel for pixel, and differs by the blood.
 *
 * Speed: a 512x512 slice must take a few milliseconds, so the per-pixel work
 * uses no libm calls except sqrt: everything that depends on the direction
 * from the head's centre (skull outline and thickness, cortex, sulci) is
 * tabulated per slice over NANG angles and looked up with a polynomial
 * atan2, and the noise is an Irwin-Hall sum of four 16-bit uniforms (one
 * generator step per pixel, pure integer arithmetic). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "phantom/phantom_internal.h"

/* Same results on every machine: never fuse a*b+c into an FMA here. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define PI 3.14159265358979323846
#define NANG 4096    /* angles tabulated per slice */
#define MAX_SULCI 64 /* sulci around the brain */
#define MAX_BLEEDS 3

/* Stream tags: the `a` argument of ich_rng_init is tag << 32 | patient. */
enum { TAG_ANATOMY = 1, TAG_STUDY = 2, TAG_BLEEDS = 3, TAG_NOISE = 4 };

/* What a pixel is, before the bleeds; the bleeds look at it to decide
 * where blood can go. */
enum tissue {
    T_AIR, T_SCALP, T_BONE,
    T_SURFACE_CSF, /* the thin CSF layer under the inner table */
    T_SULCUS,      /* sulci and fissures: subarachnoid CSF */
    T_CISTERN,     /* basal cisterns: subarachnoid CSF */
    T_VENTRICLE, T_GREY, T_WHITE
};

enum { B_EPIDURAL, B_PARENCHYMAL, B_VENTRICULAR, B_SUBARACHNOID, B_SUBDURAL };

/* What varies from one patient to the next (the patient's stream). */
typedef struct anatomy {
    double half_width, half_length; /* outer skull semi-axes, mm */
    double angle, shift_x, shift_y; /* position in the scanner */
    double skull_mm, skull_amp[3], skull_phase[3];
    double outline_amp, outline_phase;
    double diploe_hu, table_hu;
    double scalp_mm;
    double grey_hu, white_hu, csf_hu;
    double cortex_mm, cortex_phase[2];
    double ventricle_scale;
    int sulci;
    double sulcus_angle[MAX_SULCI], sulcus_drift[MAX_SULCI], sulcus_depth[MAX_SULCI];
    double sulcus_width[MAX_SULCI], sulcus_wiggle[MAX_SULCI];
} anatomy;

/* One hemorrhage of a series (the series' stream). */
typedef struct bleed {
    int type;              /* B_* */
    double hu;             /* blood density */
    double t0, half_t;     /* z centre and half extent, in units of the height */
    double phi, alpha;     /* direction and angular half extent (EDH, SDH, SAH) */
    double thick;          /* greatest thickness, mm (EDH, SDH) */
    int basal;             /* SAH in the basal cisterns instead of a convexity */
    double reach;          /* basal SAH: radius of the region, mm */
    double px, py, radius; /* IPH centre (head coords) and radius, mm */
    double lobe[2], lobe_cos[2], lobe_sin[2]; /* IPH irregular outline */
    double rim;            /* IPH edema rim, mm (0: none) */
    double level;          /* IVH: blood below (posterior to) this, mm */
} bleed;

/* A bleed as it appears in one slice: its size scaled by the z profile. */
typedef struct bleed_slice {
    const bleed *b;
    double thick, alpha, reach, radius, rim, limit;
} bleed_slice;

/* Everything about one slice that does not depend on the pixel. */
typedef struct slice_geo {
    double t;                    /* height from the skull base (0) to the vertex (1) */
    double cx, cy, cosr, sinr;   /* head centre (image mm) and tilt */
    double edge_max;             /* farthest outer skull edge, mm */
    double ventricle;            /* size of the lateral ventricles here (0: none) */
    float edge[NANG], skull[NANG], cortex[NANG];
    uint8_t nearest[NANG];       /* nearest sulcus to each angle */
    double sulcus_angle[MAX_SULCI];
    int sulci;
    int bleeds;
    bleed_slice bleed[MAX_BLEEDS];
} slice_geo;

double ich_phantom_spacing(const ich_phantom_options *o)
{
    int32_t n = o->rows > o->columns ? o->rows : o->columns;
    return ICH_PHANTOM_FOV_MM / n;
}

double ich_phantom_thickness(const ich_phantom_options *o)
{
    return ICH_PHANTOM_HEIGHT_MM / o->slices;
}

int64_t ich_phantom_min_pixels(const ich_phantom_options *o)
{
    /* About 3 mm^2 of blood, and never fewer than 3 pixels. */
    double s = ich_phantom_spacing(o);
    int64_t n = (int64_t)ceil(3.0 / (s * s));
    return n < 3 ? 3 : n;
}

static double wrap_angle(double a) /* to [-pi, pi) */
{
    while (a >= PI)
        a -= 2 * PI;
    while (a < -PI)
        a += 2 * PI;
    return a;
}

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* atan2 within about 1e-5 rad, from + - * / only (deterministic and fast). */
static inline double fast_atan2(double y, double x)
{
    double ax = fabs(x), ay = fabs(y);
    double mx = ax > ay ? ax : ay, mn = ax > ay ? ay : ax;
    double a = mx > 0 ? mn / mx : 0, s = a * a;
    double r = ((-0.0464964749 * s + 0.15931422) * s - 0.327622764) * s * a + a;
    if (ay > ax)
        r = PI / 2 - r;
    if (x < 0)
        r = PI - r;
    return y < 0 ? -r : r;
}

static inline int angle_index(double theta)
{
    int i = (int)((theta + PI) * (NANG / (2 * PI)));
    return i & (NANG - 1);
}

/* ---- The patient ------------------------------------------------------- */

static ich_rng stream(uint64_t seed, int tag, int32_t patient, uint64_t b)
{
    return ich_rng_init(seed, (uint64_t)tag << 32 | (uint32_t)patient, b);
}

static void make_anatomy(const ich_phantom_options *o, int32_t patient, int32_t study,
                         anatomy *A)
{
    ich_rng rng = stream(o->seed, TAG_ANATOMY, patient, 0);
    A->half_width = ich_rng_range(&rng, 66, 74);
    A->half_length = A->half_width * ich_rng_range(&rng, 1.17, 1.30);
    A->skull_mm = ich_rng_range(&rng, 5.0, 7.5);
    for (int k = 0; k < 3; k++) {
        A->skull_amp[k] = ich_rng_range(&rng, 0.05, 0.25) / (k + 1);
        A->skull_phase[k] = ich_rng_range(&rng, 0, 2 * PI);
    }
    A->outline_amp = ich_rng_range(&rng, 0.0, 0.025);
    A->outline_phase = ich_rng_range(&rng, 0, 2 * PI);
    A->diploe_hu = ich_rng_range(&rng, 720, 900);
    A->table_hu = ich_rng_range(&rng, 1650, 1880);
    A->scalp_mm = ich_rng_range(&rng, 3.0, 6.0);
    A->grey_hu = ich_rng_range(&rng, 36, 41);
    A->white_hu = ich_rng_range(&rng, 25, 29);
    A->csf_hu = ich_rng_range(&rng, 4, 11);
    A->cortex_mm = ich_rng_range(&rng, 2.5, 3.5);
    A->cortex_phase[0] = ich_rng_range(&rng, 0, 2 * PI);
    A->cortex_phase[1] = ich_rng_range(&rng, 0, 2 * PI);
    A->ventricle_scale = ich_rng_range(&rng, 0.8, 1.35);
    A->sulci = 44 + (int)ich_rng_below(&rng, 16);
    for (int k = 0; k < A->sulci; k++) {
        double step = 2 * PI / A->sulci;
        A->sulcus_angle[k] = -PI + step * (k + ich_rng_range(&rng, 0.15, 0.85));
        A->sulcus_drift[k] = ich_rng_range(&rng, -0.25, 0.25);
        A->sulcus_depth[k] = ich_rng_range(&rng, 6, 16) * A->ventricle_scale;
        A->sulcus_width[k] = ich_rng_range(&rng, 0.45, 0.9) * (0.6 + 0.5 * A->ventricle_scale);
        A->sulcus_wiggle[k] = ich_rng_range(&rng, -1.2, 1.2);
    }
    /* Each study places the head a little differently in the scanner. */
    ich_rng pos = stream(o->seed, TAG_STUDY, patient, (uint64_t)study);
    A->angle = ich_rng_range(&pos, -0.1, 0.1);
    A->shift_x = ich_rng_range(&pos, -5, 5);
    A->shift_y = ich_rng_range(&pos, -5, 5);
}

/* Size of the head's cross-section at height t, relative to its widest. */
static double head_scale(double t)
{
    if (t < 0.35)
        return 1.0 - 1.6 * (0.35 - t) * (0.35 - t);
    double u = (t - 0.35) / 0.72;
    return sqrt(1.0 - u * u);
}

static double ventricle_size(const anatomy *A, double t)
{
    double u = (t - 0.56) / 0.12;
    double v = A->ventricle_scale * exp(-u * u);
    return v > 0.15 ? v : 0.0;
}

/* ---- The bleeds -------------------------------------------------------- */

/* Pick a type by the weights, leaving out those already taken. */
static int pick_type(ich_rng *rng, const double weights[5], const int taken[5])
{
    double total = 0, w[5];
    int all_zero = 1;
    for (int k = 0; k < 5; k++)
        all_zero &= weights[k] == 0;
    for (int k = 0; k < 5; k++) {
        w[k] = taken[k] ? 0 : all_zero ? 1 : weights[k];
        total += w[k];
    }
    if (total <= 0)
        return -1;
    double x = ich_rng_uniform(rng) * total;
    for (int k = 0; k < 5; k++) {
        if (w[k] > 0 && x < w[k])
            return k;
        x -= w[k];
    }
    for (int k = 4; k >= 0; k--) /* rounding: the last one with weight */
        if (w[k] > 0)
            return k;
    return -1;
}

/* Lateral convexities are where epidural and subdural bleeds usually are. */
static double lateral_angle(ich_rng *rng, double spread)
{
    double side = ich_rng_uniform(rng) < 0.5 ? 0.0 : PI;
    return wrap_angle(side + ich_rng_range(rng, -spread, spread));
}

static void make_bleed(const ich_phantom_options *o, const anatomy *A, ich_rng *rng, int type,
                       bleed *b)
{
    double size = ich_rng_range(rng, o->size_min, o->size_max);
    memset(b, 0, sizeof *b);
    b->type = type;
    b->hu = ich_rng_range(rng, 58, 84);
    double half_mm = 0;
    switch (type) {
    case B_EPIDURAL:
        b->t0 = ich_rng_range(rng, 0.40, 0.75);
        half_mm = 8 + 14 * size;
        b->phi = lateral_angle(rng, 0.9);
        b->alpha = (12 + 22 * size) / 62.0;
        b->thick = 4 + 14 * size;
        break;
    case B_SUBDURAL:
        b->t0 = ich_rng_range(rng, 0.40, 0.75);
        half_mm = 14 + 20 * size;
        b->phi = lateral_angle(rng, 0.5);
        b->alpha = 0.45 + 0.75 * size;
        b->thick = 2.0 + 9 * size;
        b->hu = ich_rng_range(rng, 55, 78);
        break;
    case B_SUBARACHNOID:
        b->basal = ich_rng_uniform(rng) < 0.4;
        if (b->basal) {
            b->t0 = ich_rng_range(rng, 0.26, 0.38);
            half_mm = 8 + 10 * size;
            b->reach = 20 + 40 * size;
        } else {
            b->t0 = ich_rng_range(rng, 0.45, 0.80);
            half_mm = 8 + 12 * size;
            b->phi = ich_rng_range(rng, -PI, PI);
            b->alpha = 0.2 + 0.6 * size;
        }
        break;
    case B_PARENCHYMAL: {
        b->t0 = ich_rng_range(rng, 0.36, 0.68);
        half_mm = 4 + 12 * size;
        double scale = head_scale(b->t0);
        b->radius = (4 + 14 * size) * scale;
        for (int k = 0; k < 2; k++) {
            double phase = ich_rng_range(rng, 0, 2 * PI);
            b->lobe[k] = ich_rng_range(rng, 0.0, 0.18) / (k + 1);
            b->lobe_cos[k] = cos(phase);
            b->lobe_sin[k] = sin(phase);
        }
        /* Deep (basal ganglia, thalamus) or lobar, always inside the brain:
         * the outline stays 3 mm or more inside the inner table. */
        double dir = ich_rng_range(rng, -PI, PI);
        double room = A->half_width * scale * 0.97 - A->skull_mm * 1.5 -
                      b->radius * (1 + b->lobe[0] + b->lobe[1]) - 3;
        double dist = ich_rng_range(rng, 0.1, 1.0) * (room > 0 ? room : 0);
        b->px = dist * cos(dir);
        b->py = dist * sin(dir) * 1.15;
        b->rim = ich_rng_uniform(rng) < 0.7 ? 1.5 + 3.0 * size : 0;
        break;
    }
    case B_VENTRICULAR: {
        b->t0 = ich_rng_range(rng, 0.50, 0.62);
        half_mm = 8 + 12 * size;
        /* A fluid level: blood layers in the dependent (posterior) horns,
         * the same plane on every slice. */
        double v = ventricle_size(A, b->t0);
        b->level = 26.0 * v - 4.0 - (5 + 28 * size);
        break;
    }
    }
    b->half_t = half_mm / ICH_PHANTOM_HEIGHT_MM;
}

/* The series' bleeds: none, one, or (sometimes) two or three types. */
static int make_bleeds(const ich_phantom_options *o, const anatomy *A, int32_t patient,
                       int32_t study, bleed out[MAX_BLEEDS])
{
    ich_rng rng = stream(o->seed, TAG_BLEEDS, patient, (uint64_t)study);
    if (!(ich_rng_uniform(&rng) < o->prevalence))
        return 0;
    int wanted = 1;
    if (ich_rng_uniform(&rng) < o->multiple)
        wanted = ich_rng_uniform(&rng) < 0.7 ? 2 : 3;
    int taken[5] = {0}, n = 0;
    while (n < wanted) {
        int type = pick_type(&rng, o->type_weights, taken);
        if (type < 0)
            break;
        taken[type] = 1;
        make_bleed(o, A, &rng, type, &out[n++]);
    }
    return n;
}

/* ---- One slice --------------------------------------------------------- */

static void make_tables(const anatomy *A, slice_geo *g)
{
    double t = g->t, scale = head_scale(t);
    double a = A->half_width * scale, b = A->half_length * scale;
    /* Near the vertex the skull is cut obliquely and looks thicker. */
    double oblique = 1.0 + 2.5 * (t > 0.8 ? t - 0.8 : 0) + 1.5 * (t < 0.15 ? 0.15 - t : 0);
    g->edge_max = 0;
    for (int i = 0; i < NANG; i++) {
        double th = -PI + (i + 0.5) * (2 * PI / NANG);
        double c = cos(th), s = sin(th);
        double e = a * b / sqrt(b * b * c * c + a * a * s * s);
        e *= 1.0 + A->outline_amp * sin(3 * th + A->outline_phase);
        double k = 1.0;
        for (int h = 0; h < 3; h++)
            k += A->skull_amp[h] * sin((h + 1) * th + A->skull_phase[h]);
        g->edge[i] = (float)e;
        g->skull[i] = (float)(A->skull_mm * k * oblique);
        g->cortex[i] = (float)(A->cortex_mm * (1.0 + 0.25 * sin(5 * th + A->cortex_phase[0]) +
                                               0.15 * sin(11 * th + A->cortex_phase[1])));
        if (e > g->edge_max)
            g->edge_max = e;
    }
    /* Sulci drift slowly with height; each angle remembers its nearest. */
    g->sulci = A->sulci;
    for (int k = 0; k < A->sulci; k++)
        g->sulcus_angle[k] = wrap_angle(A->sulcus_angle[k] + A->sulcus_drift[k] * (t - 0.5));
    for (int i = 0; i < NANG; i++) {
        double th = -PI + (i + 0.5) * (2 * PI / NANG), best = 1e9;
        for (int k = 0; k < A->sulci; k++) {
            double d = fabs(wrap_angle(th - g->sulcus_angle[k]));
            if (d < best) {
                best = d;
                g->nearest[i] = (uint8_t)k;
            }
        }
    }
}

static void slice_bleeds(const bleed *bleeds, int n, slice_geo *g)
{
    g->bleeds = 0;
    for (int k = 0; k < n; k++) {
        const bleed *b = &bleeds[k];
        double u = (g->t - b->t0) / b->half_t;
        if (fabs(u) >= 1)
            continue;
        double f = sqrt(1 - u * u); /* an ellipsoid's profile along z */
        bleed_slice *s = &g->bleed[g->bleeds++];
        s->b = b;
        s->thick = b->thick * f;
        s->alpha = b->alpha * (b->type == B_SUBARACHNOID ? f : sqrt(f));
        s->reach = b->reach * f;
        s->radius = b->radius * f;
        s->rim = b->rim * f;
        s->limit = (s->radius * (1 + b->lobe[0] + b->lobe[1]) + s->rim) * 1.01;
    }
}

/* A pixel: tissue class, HU before the bleeds, and where it lies. */
typedef struct pixel {
    int tissue;
    double hu;
    double theta;  /* direction from the head centre */
    double inside; /* depth below the inner table, mm (negative: not inside) */
} pixel;

/* The deep structures, for a pixel of white matter at head coords (x, y). */
static void deep_structures(const anatomy *A, const slice_geo *g, double x, double y, pixel *p)
{
    double t = g->t, v = g->ventricle, ax = fabs(x);
    /* Lateral ventricles: two curved bands ")(", close to the midline in
     * the middle and spreading apart at both ends. */
    if (v > 0) {
        double along = (y + 4.0) / (26.0 * v);
        if (fabs(along) < 1.0) {
            double inner = 2.0 + 12.0 * along * along * v;
            double half = 4.5 * v * sqrt(1.0 - along * along);
            if (fabs(ax - inner - half) < half) {
                p->tissue = T_VENTRICLE;
                p->hu = A->csf_hu;
                return;
            }
            /* Caudate heads beside the frontal horns. */
            if (along < -0.2 && fabs(ax - inner - 2 * half - 4) < 4) {
                p->tissue = T_GREY;
                p->hu = A->grey_hu - 2;
                return;
            }
        }
    }
    /* Third ventricle: a midline slit. */
    if (t > 0.33 && t < 0.5 && ax < 1.6 && y > -8 && y < 6) {
        p->tissue = T_VENTRICLE;
        p->hu = A->csf_hu;
        return;
    }
    /* Thalami and lentiform nuclei: deep grey matter. */
    if (t > 0.34 && t < 0.56) {
        double dx = (ax - 11) / 7.5, dy = (y - 3) / 10;
        double lx = (ax - 22) / 5, ly = (y + 6) / 12;
        if (dx * dx + dy * dy < 1 || lx * lx + ly * ly < 1) {
            p->tissue = T_GREY;
            p->hu = A->grey_hu - 3;
            return;
        }
    }
    /* Midbrain with the ambient cistern around it, the suprasellar cistern
     * in front, the quadrigeminal cistern behind. */
    if (t > 0.15 && t < 0.38) {
        double r = sqrt(x * x + (y - 6) * (y - 6)), rm = 11.0;
        if (r < rm) {
            p->tissue = T_GREY;
            p->hu = 0.5 * (A->grey_hu + A->white_hu);
            return;
        }
        double sx = x, sy = y + 11, qy = y - 6 - rm - 3.5;
        if (r < rm + 2.3 || (t > 0.2 && sx * sx + sy * sy < 25) ||
            (t > 0.27 && x * x + qy * qy < 14)) {
            p->tissue = T_CISTERN;
            p->hu = A->csf_hu;
            return;
        }
    }
    /* Fourth ventricle in the posterior fossa. */
    if (t > 0.07 && t < 0.2 && ax < 3.5 && fabs(y - 28) < 5) {
        p->tissue = T_VENTRICLE;
        p->hu = A->csf_hu;
    }
}

/* Petrous ridges of the temporal bones at the skull base. */
static int petrous_bone(const slice_geo *g, double x, double y)
{
    if (g->t >= 0.2)
        return 0;
    /* Segment from the apex (12, 0) to the lateral end (45, 24), per side. */
    double ax = fabs(x) - 12, ay = y, dx = 33, dy = 24;
    double u = (ax * dx + ay * dy) / (dx * dx + dy * dy);
    if (u < 0 || u > 1)
        return 0;
    double ex = ax - u * dx, ey = ay - u * dy, w = 2.0 + 14.0 * (0.2 - g->t);
    return ex * ex + ey * ey < w * w;
}

/* The tissue at head coords (x, y). */
static void anatomy_at(const anatomy *A, const slice_geo *g, double x, double y, pixel *p)
{
    double r = sqrt(x * x + y * y);
    p->inside = -1;
    if (r > g->edge_max + A->scalp_mm + 0.5) {
        p->tissue = T_AIR;
        p->hu = -1000;
        return;
    }
    double theta = fast_atan2(y, x);
    int i = angle_index(theta);
    double depth = g->edge[i] - r, skull = g->skull[i];
    p->theta = theta;
    if (depth < -A->scalp_mm) {
        p->tissue = T_AIR;
        p->hu = -1000;
        return;
    }
    if (depth < 0) {
        p->tissue = T_SCALP;
        /* Skin and muscle around a layer of subcutaneous fat. */
        double u = -depth / A->scalp_mm;
        p->hu = u > 0.3 && u < 0.7 ? -70 : 35;
        return;
    }
    if (depth < skull) {
        /* Dense outer and inner tables, spongy diploe between them. */
        double u = 2.0 * depth / skull - 1.0;
        p->tissue = T_BONE;
        p->hu = A->diploe_hu + (A->table_hu - A->diploe_hu) * u * u;
        return;
    }
    double inside = depth - skull;
    p->inside = inside;
    if (inside < 1.0) {
        p->tissue = T_SURFACE_CSF;
        p->hu = A->csf_hu;
        return;
    }
    if (petrous_bone(g, x, y)) {
        p->tissue = T_BONE;
        p->hu = 1150;
        p->inside = -1;
        return;
    }
    /* Interhemispheric fissure, front and back; Sylvian fissures at the
     * sides of the middle slices. */
    if (g->t > 0.3 && fabs(x) < 0.9 && (y < -14 || y > 20)) {
        p->tissue = T_SULCUS;
        p->hu = A->csf_hu;
        return;
    }
    if (g->t > 0.28 && g->t < 0.52 && inside < 26 && fabs(x) > 1.2 * fabs(y) &&
        fabs(y + 8 - 0.3 * inside) < 1.1) {
        p->tissue = T_SULCUS;
        p->hu = A->csf_hu;
        return;
    }
    /* Sulci: CSF clefts from the surface, lined with grey matter. */
    int k = g->nearest[i];
    double depth_k = A->sulcus_depth[k];
    double wiggle = fabs(inside / 5.0 - floor(inside / 5.0) - 0.5) * 4 - 1; /* triangle wave */
    double dist = fabs(wrap_angle(theta - g->sulcus_angle[k]) * r + A->sulcus_wiggle[k] * wiggle);
    double half = A->sulcus_width[k] * (1.0 - 0.5 * inside / depth_k);
    if (inside < depth_k && dist < half) {
        p->tissue = T_SULCUS;
        p->hu = A->csf_hu;
        return;
    }
    double grey = clamp01((g->cortex[i] - inside) / 1.2 + 0.5);
    if (inside < depth_k + 2.5) {
        double lining = clamp01((half + 2.4 - dist) / 1.2 + 0.5);
        grey = grey > lining ? grey : lining;
    }
    p->tissue = grey >= 0.5 ? T_GREY : T_WHITE;
    p->hu = A->white_hu + (A->grey_hu - A->white_hu) * grey;
    if (p->tissue == T_WHITE)
        deep_structures(A, g, x, y, p);
}

/* ---- The bleeds in a pixel --------------------------------------------- */

static int in_cavity(int tissue)
{
    return tissue >= T_SURFACE_CSF;
}

/* Does bleed `s` cover the pixel? Sets *edema when it is in an IPH's rim. */
static int bleed_covers(const bleed_slice *s, const pixel *p, double x, double y, double gy,
                        int *edema)
{
    const bleed *b = s->b;
    switch (b->type) {
    case B_EPIDURAL:
    case B_SUBDURAL: {
        if (!in_cavity(p->tissue) || p->inside < 0 || p->inside > s->thick)
            return 0;
        double u = wrap_angle(p->theta - b->phi) / s->alpha;
        if (fabs(u) >= 1)
            return 0;
        /* Epidural: a lens, thickest in the middle; subdural: a crescent of
         * nearly even thickness that thins only at its ends. */
        double u2 = u * u;
        double profile = b->type == B_EPIDURAL ? 1 - u2 : 1 - u2 * u2;
        return p->inside < s->thick * profile;
    }
    case B_SUBARACHNOID:
        if (p->tissue != T_SULCUS && p->tissue != T_CISTERN)
            return 0;
        if (b->basal)
            return x * x + y * y < s->reach * s->reach;
        return fabs(wrap_angle(p->theta - b->phi)) < s->alpha;
    case B_VENTRICULAR:
        return p->tissue == T_VENTRICLE && gy > b->level;
    case B_PARENCHYMAL: {
        if (p->tissue != T_GREY && p->tissue != T_WHITE)
            return 0;
        double dx = x - b->px, dy = y - b->py;
        if (fabs(dx) > s->limit || fabs(dy) > s->limit)
            return 0;
        double r2 = dx * dx + dy * dy;
        if (r2 > s->limit * s->limit)
            return 0;
        double r = sqrt(r2), c = r > 0 ? dx / r : 1, sn = r > 0 ? dy / r : 0;
        double c2 = c * c - sn * sn, s2 = 2 * c * sn;
        double c3 = c * (4 * c * c - 3), s3 = sn * (3 - 4 * sn * sn);
        double outline = s->radius * (1 + b->lobe[0] * (c2 * b->lobe_cos[0] + s2 * b->lobe_sin[0]) +
                                      b->lobe[1] * (c3 * b->lobe_cos[1] + s3 * b->lobe_sin[1]));
        if (r < outline)
            return 1;
        if (r < outline + s->rim)
            *edema = 1;
        return 0;
    }
    }
    return 0;
}

/* ---- Noise ------------------------------------------------------------- */

/* Approximately standard normal: the sum of four 16-bit uniforms, centred
 * and scaled (Irwin-Hall; tails end at +-3.46, fine for scanner noise). */
static inline double noise_sample(ich_rng *rng)
{
    uint64_t x = ich_rng_next(rng);
    int64_t sum = (int64_t)(x & 0xFFFF) + (int64_t)(x >> 16 & 0xFFFF) +
                  (int64_t)(x >> 32 & 0xFFFF) + (int64_t)(x >> 48);
    return (double)(sum - 131070) * (1.7320508075688772 / 65536.0);
}

static int16_t to_stored(double hu)
{
    double v = floor(hu + 1024.0 + 0.5);
    if (v < -32768)
        v = -32768;
    if (v > 32767)
        v = 32767;
    return (int16_t)v;
}

ich_status ich_phantom_draw(const ich_phantom_options *o, int32_t patient, int32_t study,
                            int32_t slice, int16_t *stored, int64_t blood_pixels[5])
{
    slice_geo *g = malloc(sizeof *g);
    if (!g)
        return ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory");
    anatomy A;
    bleed bleeds[MAX_BLEEDS];
    make_anatomy(o, patient, study, &A);
    int nb = make_bleeds(o, &A, patient, study, bleeds);

    g->t = (slice + 0.5) / o->slices;
    g->cosr = cos(A.angle);
    g->sinr = sin(A.angle);
    g->ventricle = ventricle_size(&A, g->t);
    make_tables(&A, g);
    slice_bleeds(bleeds, nb, g);

    double mm = ich_phantom_spacing(o);
    double cx = 0.5 * o->columns * mm + A.shift_x, cy = 0.5 * o->rows * mm + A.shift_y;
    ich_rng noise = stream(o->seed, TAG_NOISE, patient, (uint64_t)study << 24 | (uint32_t)slice);
    memset(blood_pixels, 0, 5 * sizeof *blood_pixels);

    for (int32_t row = 0; row < o->rows; row++) {
        double py = (row + 0.5) * mm - cy;
        for (int32_t col = 0; col < o->columns; col++) {
            double px = (col + 0.5) * mm - cx;
            /* Head coordinates: x to the patient's left, y front to back. */
            double x = g->cosr * px + g->sinr * py, y = -g->sinr * px + g->cosr * py;
            pixel p;
            anatomy_at(&A, g, x, y, &p);
            double hu = p.hu;
            if (g->bleeds && p.tissue >= T_SURFACE_CSF) {
                int owner = -1, edema = 0;
                for (int k = 0; k < g->bleeds; k++)
                    if (bleed_covers(&g->bleed[k], &p, x, y, py, &edema))
                        owner = k; /* a later bleed lies over an earlier one */
                if (owner >= 0) {
                    hu = g->bleed[owner].b->hu;
                    blood_pixels[g->bleed[owner].b->type]++;
                } else if (edema) {
                    hu = A.white_hu - 10; /* vasogenic edema: darker than white matter */
                }
            }
            if (o->noise > 0)
                hu += o->noise * noise_sample(&noise);
            stored[(size_t)row * o->columns + col] = to_stored(hu);
        }
    }
    free(g);
    return ICH_OK;
}
