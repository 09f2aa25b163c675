/* The head's anatomy: what varies by patient (size, shape, skull, age),
 * the per-slice tables, and the tissue at one point of a slice.
 *
 * Speed: a 512x512 slice must take a few milliseconds, so the per-pixel work
 * uses no libm calls except sqrt: everything that depends on the direction
 * from the head's centre (skull outline and thickness, cortex, sulci) is
 * tabulated per slice over PH_NANG angles and looked up with a polynomial
 * atan2, and the textures are lattices per slice read bilinearly. */
#include <math.h>
#include <string.h>

#include "phantom/phantom_internal.h"

/* Same results on every machine: never fuse a*b+c into an FMA here. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define PI PH_PI

ich_rng ich_phantom_stream(uint64_t seed, int tag, int32_t patient, uint64_t b)
{
    return ich_rng_init(seed, (uint64_t)tag << 32 | (uint32_t)patient, b);
}


static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}




/* ---- The patient ------------------------------------------------------- */

static void make_calcifications(ich_rng *rng, anatomy *A)
{
    /* Physiological calcifications, commoner with age; bright like bone,
     * never blood (100-400 HU). */
    A->pineal_calc = ich_rng_uniform(rng) < 0.4 + 0.4 * A->age ? ich_rng_range(rng, 120, 380) : 0;
    A->plexus_calc = ich_rng_uniform(rng) < 0.3 + 0.5 * A->age ? ich_rng_range(rng, 100, 300) : 0;
    A->falx_calc = ich_rng_uniform(rng) < 0.1 + 0.2 * A->age ? ich_rng_range(rng, 150, 400) : 0;
}

static void make_sulci(ich_rng *rng, anatomy *A)
{
    double wide = 0.7 + 0.9 * A->age; /* atrophy opens the sulci */
    A->sulci = 44 + (int)ich_rng_below(rng, 16);
    for (int k = 0; k < A->sulci; k++) {
        double step = 2 * PI / A->sulci;
        A->sulcus_angle[k] = -PI + step * (k + ich_rng_range(rng, 0.15, 0.85));
        A->sulcus_drift[k] = ich_rng_range(rng, -0.25, 0.25);
        A->sulcus_depth[k] = ich_rng_range(rng, 7, 18) * (0.85 + 0.3 * A->age);
        A->sulcus_width[k] = ich_rng_range(rng, 0.3, 0.8) * wide;
        A->sulcus_wiggle[k] = ich_rng_range(rng, -1.5, 1.5);
    }
}

/* What differs between scanners and protocols and must not teach a model
 * anything about bleeds: all of it comes from the study's stream, never
 * from the bleeds'. */
static void make_scanner(ich_rng *pos, anatomy *A)
{
    /* Reconstruction kernel: soft (two [1 2 1] passes: blotchy noise,
     * blurred edges), standard ([1 2 1]) or sharp ([1 6 1]: fine grain,
     * crisp edges). */
    double u = ich_rng_uniform(pos);
    A->kernel = u < 0.45 ? PH_KERNEL_SOFT : u < 0.8 ? PH_KERNEL_STANDARD : PH_KERNEL_SHARP;
    /* Outside the reconstruction circle some scanners store a padding
     * value instead of air: -3024 HU (stored -2000 at intercept -1024) or
     * -2000 HU. */
    u = ich_rng_uniform(pos);
    A->padding_hu = u < 0.5 ? 0 : u < 0.8 ? -3024 : -2000;
    /* Where the series starts and how far it reaches (the planning of
     * the scan), in units of the head's height. */
    A->t_offset = ich_rng_range(pos, -0.03, 0.03);
    A->t_span = ich_rng_range(pos, 0.95, 1.02);
    /* Beam hardening's cupping: the brain's periphery a few HU denser. */
    A->cup_hu = ich_rng_range(pos, 0, 4);
}

void ich_phantom_make_anatomy(const ich_phantom_options *o, int32_t patient, int32_t study,
                              anatomy *A)
{
    ich_rng rng = ich_phantom_stream(o->seed, TAG_ANATOMY, patient, 0);
    memset(A, 0, sizeof *A);
    A->half_width = ich_rng_range(&rng, 64, 76);
    A->half_length = A->half_width * ich_rng_range(&rng, 1.15, 1.32);
    A->skull_mm = ich_rng_range(&rng, 4.5, 8.0);
    for (int k = 0; k < 3; k++) {
        A->skull_amp[k] = ich_rng_range(&rng, 0.05, 0.25) / (k + 1);
        A->skull_phase[k] = ich_rng_range(&rng, 0, 2 * PI);
    }
    A->outline_amp = ich_rng_range(&rng, 0.0, 0.03);
    A->outline_phase = ich_rng_range(&rng, 0, 2 * PI);
    A->diploe_hu = ich_rng_range(&rng, 650, 950);
    A->table_hu = ich_rng_range(&rng, 1500, 1800);
    A->scalp_mm = ich_rng_range(&rng, 3.0, 7.0);
    A->grey_hu = ich_rng_range(&rng, 35, 41);
    A->white_hu = A->grey_hu - ich_rng_range(&rng, 6, 11);
    A->csf_hu = ich_rng_range(&rng, 3, 10);
    A->cortex_mm = ich_rng_range(&rng, 2.2, 3.5);
    A->cortex_phase[0] = ich_rng_range(&rng, 0, 2 * PI);
    A->cortex_phase[1] = ich_rng_range(&rng, 0, 2 * PI);
    /* Age: the young have tight sulci and slit ventricles, the old wide. */
    double u = ich_rng_uniform(&rng);
    A->age = u * u * 0.6 + u * 0.4;
    A->ventricle_scale = 0.75 + 0.75 * A->age + ich_rng_range(&rng, -0.08, 0.08);
    A->surface_csf_mm = 0.6 + 3.0 * A->age * A->age;
    A->coronal = ich_rng_range(&rng, -0.55, -0.35);
    A->lambdoid = ich_rng_range(&rng, 0.75, 1.0);
    make_calcifications(&rng, A);
    make_sulci(&rng, A);
    /* Each study places the head a little differently in the scanner and
     * has its own noise level (dose, patient size). */
    ich_rng pos = ich_phantom_stream(o->seed, TAG_STUDY, patient, (uint64_t)study);
    A->angle = ich_rng_range(&pos, -0.25, 0.25);
    A->shift_x = ich_rng_range(&pos, -12, 12);
    A->shift_y = ich_rng_range(&pos, -12, 9);
    A->noise_factor = ich_rng_range(&pos, 0.5, 1.15);
    A->headrest_gap = ich_rng_range(&pos, 0.5, 6);
    make_scanner(&pos, A);
}

/* Size of the head's cross-section at height t, relative to its widest. */
double ich_phantom_head_scale(double t)
{
    if (t < 0.35)
        return 1.0 - 1.6 * (0.35 - t) * (0.35 - t);
    double u = (t - 0.35) / 0.72, v = 1.0 - u * u;
    return sqrt(v > 0.01 ? v : 0.01);
}

double ich_phantom_ventricle_size(const anatomy *A, double t)
{
    double u = (t - 0.56) / 0.12;
    double v = A->ventricle_scale * exp(-u * u);
    return v > 0.15 ? v : 0.0;
}

/* ---- One slice's tables ------------------------------------------------ */

/* sin(h theta + phase) from cos/sin of h theta and of the phase. */
static double sin_at(double ch, double sh, double cp, double sp)
{
    return sh * cp + ch * sp;
}

/* The skull edge, skull and cortex thickness per direction. Speed: the
 * angle runs by complex rotation (one multiplication a step, no libm call
 * in the loop), and harmonics are powers of it. */
static void make_outline(const anatomy *A, slice_geo *g, double a, double b, double oblique)
{
    double t = g->t, step = 2 * PI / PH_NANG, th0 = -PI + 0.5 * step;
    double cd = cos(step), sd = sin(step), c = cos(th0), s = sin(th0);
    double cph[7], sph[7]; /* outline, 3 skull harmonics, 2 cortex, ridges */
    double phase[7] = {A->outline_phase, A->skull_phase[0], A->skull_phase[1],
                       A->skull_phase[2], A->cortex_phase[0], A->cortex_phase[1],
                       A->skull_phase[0]};
    for (int k = 0; k < 7; k++) {
        cph[k] = cos(phase[k]);
        sph[k] = sin(phase[k]);
    }
    g->edge_max = 0;
    for (int i = 0; i < PH_NANG; i++) {
        double c2 = c * c - s * s, s2 = 2 * c * s;
        double c3 = c2 * c - s2 * s, s3 = s2 * c + c2 * s;
        double c4 = c2 * c2 - s2 * s2, s4 = 2 * c2 * s2;
        double c5 = c4 * c - s4 * s, s5 = s4 * c + c4 * s;
        double c10 = c5 * c5 - s5 * s5, s10 = 2 * c5 * s5;
        double c11 = c10 * c - s10 * s, s11 = s10 * c + c10 * s;
        double e = a * b / sqrt(b * b * c * c + a * a * s * s);
        e *= 1.0 + A->outline_amp * sin_at(c3, s3, cph[0], sph[0]);
        double k = 1.0 + A->skull_amp[0] * sin_at(c, s, cph[1], sph[1]) +
                   A->skull_amp[1] * sin_at(c2, s2, cph[2], sph[2]) +
                   A->skull_amp[2] * sin_at(c3, s3, cph[3], sph[3]);
        if (t < 0.2) { /* the skull base's fossae: thicker between them */
            double w = sin_at(c4, s4, cph[6], sph[6]);
            k += (0.2 - t) * 3.0 * w * w;
        }
        g->ang[i].edge = (float)e;
        g->ang[i].skull = (float)(A->skull_mm * k * oblique);
        g->ang[i].cortex = (float)(A->cortex_mm * (1.0 + 0.25 * sin_at(c5, s5, cph[4], sph[4]) +
                                                   0.15 * sin_at(c11, s11, cph[5], sph[5])));
        if (e > g->edge_max)
            g->edge_max = e;
        double cn = c * cd - s * sd;
        s = s * cd + c * sd;
        c = cn;
    }
}

/* Each direction's nearest sulcus. The sulci are in angular order give or
 * take their drift (at most about 1.2 spacings), so a few neighbours of
 * the expected one are enough. */
static void make_nearest(slice_geo *g)
{
    int n = g->sulci;
    double spacing = 2 * PI / n;
    for (int i = 0; i < PH_NANG; i++) {
        double th = -PI + (i + 0.5) * (2 * PI / PH_NANG), best = 1e9;
        int k0 = (int)((th + PI) / spacing);
        for (int d = -4; d <= 4; d++) {
            int k = ((k0 + d) % n + n) % n;
            double dist = fabs(ich_phantom_wrap(th - g->sulcus_angle[k]));
            if (dist < best) {
                best = dist;
                g->ang[i].nearest = k;
            }
        }
    }
}

void ich_phantom_make_tables(const anatomy *A, slice_geo *g)
{
    double t = g->t, scale = ich_phantom_head_scale(t);
    double a = A->half_width * scale, b = A->half_length * scale;
    /* Near the vertex the skull is cut obliquely and looks thicker; at the
     * skull base it is thick and irregular. */
    double oblique = 1.0 + 2.5 * (t > 0.8 ? t - 0.8 : 0) + 4.0 * (t < 0.2 ? 0.2 - t : 0);
    g->scale = scale;
    g->falx_bow = 1.0 / (0.64 * b * b);
    make_outline(A, g, a, b, oblique);
    /* Sulci drift slowly with height; convexity sulci open up towards the
     * vertex, but never reach its middle (no spokes). */
    g->sulci = A->sulci;
    double open = t > 0.5 ? 1.0 + 2.2 * (t - 0.5) : 1.0;
    double deepest = 0.28 * A->half_width * scale;
    for (int k = 0; k < A->sulci; k++) {
        g->sulcus_angle[k] = ich_phantom_wrap(A->sulcus_angle[k] + A->sulcus_drift[k] * (t - 0.5));
        double depth = A->sulcus_depth[k] * (0.8 + 0.4 * open);
        g->sulcus_depth[k] = depth < deepest ? depth : deepest;
        g->sulcus_width[k] = A->sulcus_width[k] * open;
    }
    make_nearest(g);
}

/* A lattice value in -1..1 for node (i, j) of z layer `layer`. */
static double lattice(uint64_t seed, int32_t patient, int field, int i, int j, int layer)
{
    uint64_t key = (uint64_t)field << 48 | (uint64_t)(layer & 0xFFFF) << 32 |
                   (uint64_t)i << 16 | (uint64_t)j;
    ich_rng r = ich_phantom_stream(seed, TAG_TEXTURE, patient, key);
    return ich_rng_uniform(&r) * 2 - 1;
}

void ich_phantom_make_texture(uint64_t seed, int32_t patient, slice_geo *g)
{
    /* 3D value noise on a 4.8 mm lattice, 6 mm apart in z: neighbouring
     * slices see the same texture, smoothly changed. */
    double z = g->t * ICH_PHANTOM_HEIGHT_MM / 6.0;
    int layer = (int)floor(z);
    double f = z - layer;
    for (int i = 0; i <= PH_GRID; i++)
        for (int j = 0; j <= PH_GRID; j++) {
            for (int field = 0; field < 2; field++) {
                double v = (1 - f) * lattice(seed, patient, field, i, j, layer) +
                           f * lattice(seed, patient, field, i, j, layer + 1);
                if (field == 0)
                    g->texture[i][j] = (float)v;
                else
                    g->grain[i][j] = (float)v;
            }
        }
}


/* ---- The tissue at a point --------------------------------------------- */

static void set(pixel *p, int tissue, double hu)
{
    p->tissue = tissue;
    p->hu = hu;
}

/* Lateral ventricles: two curved bands ")(", close to the midline in the
 * middle and spreading apart at both ends; the one on the side a mass
 * pushes from is squeezed. xs is x after the midline shift. */
static int lateral_ventricles(const anatomy *A, const slice_geo *g, double xs, double y,
                              pixel *p)
{
    double v = g->ventricle, ax = fabs(xs);
    double along = (y + 4.0) / (26.0 * v);
    if (fabs(along) >= 1.0)
        return 0;
    double inner = 2.0 + 12.0 * along * along * v;
    double half = 4.5 * v * sqrt(1.0 - along * along);
    if (g->shift * xs < 0) /* the side the mass is on */
        half *= 1.0 - g->squeeze;
    /* The choroid plexus in the atrium, sometimes calcified. */
    if (A->plexus_calc > 0 && v > 0.4 && along > 0.55 && along < 0.85) {
        double dx = ax - inner - half, dy = y + 4.0 - 0.7 * 26.0 * v;
        if (dx * dx + dy * dy < 3.2) {
            set(p, T_CALC, A->plexus_calc);
            return 1;
        }
    }
    if (fabs(ax - inner - half) < half) {
        set(p, T_VENTRICLE, A->csf_hu);
        return 1;
    }
    /* Caudate heads beside the frontal horns. */
    if (along < -0.2 && fabs(ax - inner - 2 * half - 4) < 4) {
        set(p, T_GREY, A->grey_hu - 2);
        return 1;
    }
    return 0;
}

/* The deep structures, for a pixel of white matter at head coords (x, y);
 * xs is x after the midline shift. */
static void deep_structures(const anatomy *A, const slice_geo *g, double xs, double y,
                            pixel *p)
{
    double t = g->t, ax = fabs(xs);
    if (g->ventricle > 0 && lateral_ventricles(A, g, xs, y, p))
        return;
    /* Pineal gland behind the third ventricle, often calcified. */
    if (A->pineal_calc > 0 && t > 0.36 && t < 0.45 && xs * xs + (y - 9) * (y - 9) < 3.5) {
        set(p, T_CALC, A->pineal_calc);
        return;
    }
    /* Third ventricle: a midline slit, wider with age. */
    if (t > 0.33 && t < 0.5 && ax < 1.2 + 1.5 * A->age && y > -8 && y < 6) {
        set(p, T_VENTRICLE, A->csf_hu);
        return;
    }
    /* Thalami beside the third ventricle, and the lentiform nuclei: lenses
     * whose medial edge is the ">" of the internal capsule (white matter,
     * its genu pointing to the midline), the external capsule outside. */
    if (t > 0.34 && t < 0.54) {
        double dx = (ax - 10) / 8, dy = (y - 7) / 11;
        double medial = 15.5 + 0.5 * fabs(y + 2), lateral = 27 - 0.025 * (y + 2) * (y + 2);
        if (dx * dx + dy * dy < 1 || (y > -17 && y < 9 && ax > medial && ax < lateral)) {
            set(p, T_GREY, A->grey_hu - 2 + 1.5 * ich_phantom_texture(g->texture, xs, y));
            return;
        }
    }
    if (t >= 0.2 && t < 0.36 && ich_phantom_midbrain(A, g, xs, y, p))
        return;
    /* Tentorium: a faint dense V opening backwards from the incisura. */
    if (t > 0.17 && t < 0.36 && y > 20) {
        double w = 0.5 + 2.5 * (0.36 - t);
        if (fabs(ax - (y - 20) * w) < 0.5) {
            set(p, T_DURA, A->grey_hu + 8);
            return;
        }
    }
    /* Fourth ventricle in the posterior fossa. */
    if (t > 0.07 && t < 0.2 && ax < 3.5 && fabs(y - 28) < 5)
        set(p, T_VENTRICLE, A->csf_hu);
}

/* The skull: outer and inner tables, diploe, sutures as thin dark gaps. */
static void bone_at(const anatomy *A, const slice_geo *g, double depth, double skull,
                    double theta, double r, double x, double y, pixel *p)
{
    double u = 2.0 * depth / skull - 1.0;
    double hu = A->diploe_hu + (A->table_hu - A->diploe_hu) * u * u;
    hu += 120 * ich_phantom_texture(g->grain, x, y) * (1 - u * u);
    double lat = ich_phantom_lateral(theta);
    double gap = r * (fabs(lat - A->coronal) < fabs(lat - A->lambdoid) ? fabs(lat - A->coronal)
                                                                       : fabs(lat - A->lambdoid));
    if (g->t > 0.35 && gap < 0.45) /* coronal and lambdoid sutures */
        hu = 300;
    if (g->t > 0.75 && fabs(x) < 0.4 && y > -0.3 * A->half_length) /* sagittal */
        hu = 300;
    set(p, T_BONE, hu);
}

/* Scalp, air and the headrest, outside the skull (depth < 0). */
static void outside_at(const anatomy *A, const slice_geo *g, double depth, double x, double y,
                       pixel *p)
{
    if (depth >= -A->scalp_mm) {
        /* Skin and muscle around a layer of subcutaneous fat. */
        double u = -depth / A->scalp_mm;
        if (u > 0.3 && u < 0.7)
            set(p, T_FAT, -95 + 15 * ich_phantom_texture(g->grain, x, y));
        else
            set(p, T_SCALP, 40);
        return;
    }
    set(p, T_AIR, -1000);
    if (y > 0)
        ich_phantom_headrest(A, g, -depth - A->scalp_mm, y, p);
}

/* Brain, CSF spaces and dura inside the inner table (inside >= 0 mm deep). */
static void brain_at(const anatomy *A, const slice_geo *g, double x, double y, double r,
                     double theta, int i, double inside, pixel *p)
{
    /* One smooth random field bends the fissures and sulci (real ones are
     * not straight spokes) and gives the brain its texture. */
    double field = ich_phantom_texture(g->texture, x, y);
    double xs = x;
    if (g->shift != 0) { /* the falx bows under a mass */
        double prof = 1 - y * y * g->falx_bow;
        xs = x - g->shift * (prof > 0 ? prof : 0);
    }
    /* Interhemispheric fissure with the falx in it, front and back;
     * Sylvian fissures at the sides of the middle slices. */
    if (g->t > 0.3 && fabs(xs) < 0.8 + 1.2 * A->age && (y < -14 || y > 20)) {
        if (fabs(xs) < 0.45)
            set(p, A->falx_calc > 0 && y > -32 && y < -24 ? T_CALC : T_DURA,
                A->falx_calc > 0 && y > -32 && y < -24 ? A->falx_calc : A->grey_hu + 10);
        else
            set(p, T_SULCUS, A->csf_hu);
        return;
    }
    if (g->t > 0.28 && g->t < 0.52 && inside < 26 && fabs(x) > 1.2 * fabs(y) &&
        fabs(y + 8 - 0.3 * inside + 5 * field) < 1.0 + 1.2 * A->age) {
        set(p, T_SULCUS, A->csf_hu);
        return;
    }
    /* Sulci: CSF clefts from the surface, lined with grey matter (gyri),
     * bent by the field. Thin ones share the 5 mm slice with cortex, so
     * they look less dark than CSF (partial volume along z). */
    double bent = theta + 0.09 * field;
    int k = g->ang[ich_phantom_angle_index(bent)].nearest;
    double depth_k = g->sulcus_depth[k];
    double w5 = inside * 0.2; /* inside >= 0: truncation is floor */
    double wiggle = fabs(w5 - (double)(int32_t)w5 - 0.5) * 4 - 1; /* triangle wave */
    double dist = fabs(ich_phantom_wrap(bent - g->sulcus_angle[k]) * r +
                       A->sulcus_wiggle[k] * wiggle);
    double half = g->sulcus_width[k] * (1.0 - 0.5 * inside / depth_k);
    if (inside < depth_k && dist < half) {
        set(p, T_SULCUS, A->csf_hu + 0.3 * (A->grey_hu - A->csf_hu));
        return;
    }
    double grey = clamp01((g->ang[i].cortex - inside) / 1.2 + 0.5);
    if (inside < depth_k + 2.5) {
        double lining = clamp01((half + 2.4 - dist) / 1.2 + 0.5);
        grey = grey > lining ? grey : lining;
    }
    double tex = 1.5 * field;
    p->tissue = grey >= 0.5 ? T_GREY : T_WHITE;
    p->hu = A->white_hu + (A->grey_hu - A->white_hu) * grey + tex;
    if (p->tissue == T_WHITE)
        deep_structures(A, g, xs, y, p);
}

void ich_phantom_anatomy_at(const anatomy *A, const slice_geo *g, double x, double y, pixel *p)
{
    double r = sqrt(x * x + y * y);
    p->inside = -1;
    p->theta = 0;
    /* Far outside: air (or, behind the head, perhaps the headrest). */
    if (r > g->edge_max + A->scalp_mm + 0.5 && (y < 0 || r > g->edge_max + A->scalp_mm + 12)) {
        set(p, T_AIR, -1000);
        return;
    }
    double theta = ich_phantom_atan2(y, x);
    int i = ich_phantom_angle_index(theta);
    double depth = g->ang[i].edge - r, skull = g->ang[i].skull;
    p->theta = theta;
    if (depth < 0) {
        outside_at(A, g, depth, x, y, p);
        return;
    }
    if (depth < skull) {
        bone_at(A, g, depth, skull, theta, r, x, y, p);
        return;
    }
    double inside = depth - skull;
    p->inside = inside;
    if (g->t < 0.24 && ich_phantom_skull_base(A, g, x, y, inside, p))
        return;
    if (inside < A->surface_csf_mm) {
        set(p, T_SURFACE_CSF, A->csf_hu);
        return;
    }
    brain_at(A, g, x, y, r, theta, i, inside, p);
}
