/* The bleeds of a series (its own random stream, so the same patient with
 * prevalence 0 and 1 has the same head) and where each covers a pixel.
 *
 * As they appear on CT: acute blood 50-90 HU (lower in anaemia or when a
 * few days old), epidural a biconvex lens bounded by the sutures, subdural
 * a crescent along the inner table that crosses them, intraparenchymal a
 * round or lobulated clot with a dark rim of oedema, intraventricular blood
 * layering in the dependent horns, subarachnoid blood thin in sulci and
 * the basal cisterns. Sizes run from a few millimetres to large bleeds with
 * mass effect (a midline shift, a squeezed ventricle: anatomy.c). */
#include <math.h>
#include <string.h>

#include "phantom/phantom_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define PI PH_PI

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
    return ich_phantom_wrap(side + ich_rng_range(rng, -spread, spread));
}

/* The mass effect pushes the midline away from the bleed's side. */
static double push_from(double x_side, double excess, double per_mm)
{
    if (excess <= 0)
        return 0;
    return (x_side > 0 ? -1 : 1) * excess * per_mm;
}

static void make_epidural(const anatomy *A, ich_rng *rng, double size, bleed *b,
                          double *half_mm)
{
    b->t0 = ich_rng_range(rng, 0.38, 0.75);
    *half_mm = 10 + 18 * size;
    b->side = ich_rng_uniform(rng) < 0.5 ? 1 : -1;
    /* Temporoparietal mostly, between the coronal and lambdoid sutures,
     * which bound it: the dura is fixed there. */
    double span = A->lambdoid - A->coronal;
    double centre = A->coronal + span * ich_rng_range(rng, 0.25, 0.75);
    double alpha = (10 + 24 * size) / 62.0;
    b->lo = centre - alpha > A->coronal ? centre - alpha : A->coronal;
    b->hi = centre + alpha < A->lambdoid ? centre + alpha : A->lambdoid;
    b->phi = b->side > 0 ? centre : ich_phantom_wrap(PI - centre);
    b->alpha = 1.0; /* the share of [lo, hi] a slice shows, by the z profile */
    b->thick = 2.5 + 17 * size;
    b->push = push_from(b->side, b->thick - 9, 0.6);
}

static void make_subdural(ich_rng *rng, double size, bleed *b, double *half_mm)
{
    b->t0 = ich_rng_range(rng, 0.40, 0.78);
    *half_mm = 18 + 24 * size;
    b->phi = lateral_angle(rng, 0.6);
    b->alpha = 0.5 + 0.8 * size; /* long: it crosses the sutures */
    b->thick = 1.5 + 11 * size;
    b->push = push_from(cos(b->phi), b->thick - 6, 0.7);
}

static void make_subarachnoid(ich_rng *rng, double size, bleed *b, double *half_mm)
{
    b->basal = ich_rng_uniform(rng) < 0.4;
    if (b->basal) {
        b->t0 = ich_rng_range(rng, 0.26, 0.38);
        *half_mm = 10 + 14 * size;
        b->reach = 12 + 45 * size;
    } else {
        b->t0 = ich_rng_range(rng, 0.42, 0.82);
        *half_mm = 10 + 16 * size;
        b->phi = ich_rng_range(rng, -PI, PI);
        b->alpha = 0.12 + 0.65 * size;
    }
}

static void make_parenchymal(const anatomy *A, ich_rng *rng, double size, bleed *b,
                             double *half_mm)
{
    b->t0 = ich_rng_range(rng, 0.36, 0.70);
    *half_mm = 3 + 22 * size;
    double scale = ich_phantom_head_scale(b->t0);
    b->radius = (1.0 + 19 * size) * scale;
    for (int k = 0; k < 2; k++) {
        double phase = ich_rng_range(rng, 0, 2 * PI);
        b->lobe[k] = ich_rng_range(rng, 0.0, 0.25) / (k + 1);
        b->lobe_cos[k] = cos(phase);
        b->lobe_sin[k] = sin(phase);
    }
    /* Deep (basal ganglia, thalamus) or lobar, always inside the brain:
     * the outline stays 3 mm or more inside the inner table. */
    double dir = ich_rng_range(rng, -PI, PI);
    double room = A->half_width * scale * 0.97 - A->skull_mm * 1.5 -
                  b->radius * (1 + b->lobe[0] + b->lobe[1]) - 3 - A->surface_csf_mm;
    double dist = ich_rng_range(rng, 0.1, 1.0) * (room > 0 ? room : 0);
    b->px = dist * cos(dir);
    b->py = dist * sin(dir) * 1.15;
    b->rim = ich_rng_uniform(rng) < 0.75 ? 1.0 + 4.0 * size : 0;
    b->push = push_from(b->px, b->radius - 9, 0.5);
}

static void make_bleed(const ich_phantom_options *o, const anatomy *A, ich_rng *rng, int type,
                       bleed *b)
{
    /* Small bleeds are commoner than large ones; the size maps to mm
     * through a steep power so that the smallest (size_min 0.4: 0.1) are
     * 3-5 mm across, the hard cases, and the largest (1.0) several cm. */
    double u = ich_rng_uniform(rng);
    double size = o->size_min + (o->size_max - o->size_min) * u * sqrt(u);
    size = size * size * sqrt(size);
    memset(b, 0, sizeof *b);
    b->type = type;
    /* Acute blood; one in eight is older or in an anaemic patient and
     * nearly isodense with brain, the hardest to see. */
    b->hu = ich_rng_uniform(rng) < 0.125 ? ich_rng_range(rng, 42, 52) : ich_rng_range(rng, 55, 84);
    double half_mm = 0;
    switch (type) {
    case B_EPIDURAL:
        make_epidural(A, rng, size, b, &half_mm);
        break;
    case B_SUBDURAL:
        make_subdural(rng, size, b, &half_mm);
        b->hu -= 3; /* thinner layers, more mixed with CSF */
        break;
    case B_SUBARACHNOID:
        make_subarachnoid(rng, size, b, &half_mm);
        break;
    case B_PARENCHYMAL:
        make_parenchymal(A, rng, size, b, &half_mm);
        break;
    case B_VENTRICULAR: {
        b->t0 = ich_rng_range(rng, 0.50, 0.62);
        half_mm = 10 + 16 * size;
        /* A fluid level: blood layers in the dependent (posterior) horns,
         * the same plane on every slice. */
        double v = ich_phantom_ventricle_size(A, b->t0);
        b->level = 26.0 * v - 4.0 - (4 + 30 * size);
        break;
    }
    }
    b->half_t = half_mm / ICH_PHANTOM_HEIGHT_MM;
}

int ich_phantom_make_bleeds(const ich_phantom_options *o, const anatomy *A, int32_t patient,
                            int32_t study, bleed out[PH_MAX_BLEEDS])
{
    ich_rng rng = ich_phantom_stream(o->seed, TAG_BLEEDS, patient, (uint64_t)study);
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

void ich_phantom_slice_bleeds(const bleed *bleeds, int n, slice_geo *g)
{
    g->bleeds = 0;
    g->shift = 0;
    for (int k = 0; k < n; k++) {
        const bleed *b = &bleeds[k];
        double u = (g->t - b->t0) / b->half_t;
        /* The mass effect reaches farther along z than the blood. */
        double um = u / 1.8;
        if (fabs(um) < 1)
            g->shift += b->push * (1 - um * um);
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
    double m = fabs(g->shift) / 10;
    g->squeeze = m > 0.7 ? 0.7 : m;
}

static int in_cavity(int tissue)
{
    return tissue >= T_SURFACE_CSF;
}

/* Epidural: a lens between its ends (sutures), thickest in the middle. */
static int epidural_covers(const bleed_slice *s, const pixel *p)
{
    const bleed *b = s->b;
    double x_side = p->theta > -PI / 2 && p->theta <= PI / 2 ? 1 : -1;
    if (x_side != b->side)
        return 0;
    double lat = ich_phantom_lateral(p->theta);
    double mid = 0.5 * (b->lo + b->hi), half = 0.5 * (b->hi - b->lo) * s->alpha;
    double u = (lat - mid) / half;
    if (fabs(u) >= 1)
        return 0;
    return p->inside < s->thick * (1 - u * u);
}

/* Intraparenchymal: a lobulated blob; *edema in the rim around it. */
static int parenchymal_covers(const bleed_slice *s, const pixel *p, double x, double y,
                              int *edema)
{
    const bleed *b = s->b;
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

int ich_phantom_bleed_covers(const bleed_slice *s, const pixel *p, double x, double y,
                             double gy, int *edema)
{
    const bleed *b = s->b;
    switch (b->type) {
    case B_EPIDURAL:
        if (!in_cavity(p->tissue) || p->inside < 0 || p->inside > s->thick)
            return 0;
        return epidural_covers(s, p);
    case B_SUBDURAL: {
        if (!in_cavity(p->tissue) || p->inside < 0 || p->inside > s->thick)
            return 0;
        double u = ich_phantom_wrap(p->theta - b->phi) / s->alpha;
        if (fabs(u) >= 1)
            return 0;
        /* A crescent of nearly even thickness that thins only at its ends. */
        double u2 = u * u;
        return p->inside < s->thick * (1 - u2 * u2);
    }
    case B_SUBARACHNOID:
        if (p->tissue != T_SULCUS && p->tissue != T_CISTERN)
            return 0;
        if (b->basal)
            return x * x + y * y < s->reach * s->reach;
        return fabs(ich_phantom_wrap(p->theta - b->phi)) < s->alpha;
    case B_VENTRICULAR:
        return p->tissue == T_VENTRICLE && gy > b->level;
    case B_PARENCHYMAL:
        return parenchymal_covers(s, p, x, y, edema);
    }
    return 0;
}
