/* Drawing one phantom slice: the head's anatomy (anatomy.c, skullbase.c),
 * then the bleeds (bleeds.c), then the scanner (scanner.c), in Hounsfield
 * units, and the tissue of each pixel as drawn (the labels, the tests and
 * `ich-phantom --stats` read it).
 *
 * Independent random streams, so that changing one option leaves the rest
 * alone: the anatomy comes from the patient's stream (and the study's, for
 * the positioning in the scanner), the bleeds from the series' stream, the
 * noise from the slice's stream. The same patient with prevalence 0 and 1
 * therefore has the same skull and tissues, and differs by the blood and
 * what the blood pushes aside. */
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

/* The public ich_phantom_tissue of each internal class. */
static const uint8_t PUBLIC_TISSUE[] = {
    [T_AIR] = ICH_PHANTOM_AIR,        [T_SCALP] = ICH_PHANTOM_SOFT_TISSUE,
    [T_FAT] = ICH_PHANTOM_FAT,        [T_BONE] = ICH_PHANTOM_BONE,
    [T_SINUS] = ICH_PHANTOM_SINUS_AIR, [T_HEADREST] = ICH_PHANTOM_HEADREST,
    [T_SURFACE_CSF] = ICH_PHANTOM_CSF, [T_SULCUS] = ICH_PHANTOM_CSF,
    [T_CISTERN] = ICH_PHANTOM_CSF,    [T_VENTRICLE] = ICH_PHANTOM_CSF,
    [T_DURA] = ICH_PHANTOM_DURA,      [T_CALC] = ICH_PHANTOM_CALCIFICATION,
    [T_GREY] = ICH_PHANTOM_GREY,      [T_WHITE] = ICH_PHANTOM_WHITE,
};

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

static inline int16_t to_stored(double hu, double intercept)
{
    /* No clamping needed: drawn HU lie in -1100..2100, noise 500 HU at
     * most (checked) adds under 4700 through ich_phantom_white_sd, and the
     * intercept is -1024..0, so the value fits int16. floor without a libm
     * call: truncation of a positive number. */
    double v = hu - intercept + 0.5;
    return (int16_t)((int32_t)(v + 65536.0) - 65536);
}

/* Two noise samples per generator step: the one kept for the next pixel. */
typedef struct noise_spare {
    int has;
    double value;
} noise_spare;

static inline double next_noise(ich_rng *rng, noise_spare *spare)
{
    if (spare->has) {
        spare->has = 0;
        return spare->value;
    }
    double a, b;
    ich_phantom_noise2(rng, &a, &b);
    spare->has = 1;
    spare->value = b;
    return a;
}

/* Outside the reconstruction circle (the largest circle in the matrix),
 * the padding value, after the kernel as a scanner writes it. */
static void pad_outside_circle(const ich_phantom_options *o, int16_t *stored, int16_t pad)
{
    double cr = 0.5 * o->rows, cc = 0.5 * o->columns, rad = cr < cc ? cr : cc;
    for (int32_t row = 0; row < o->rows; row++) {
        double dy = row + 0.5 - cr, span2 = rad * rad - dy * dy;
        double span = span2 > 0 ? sqrt(span2) : 0;
        /* Columns [lo, hi) are inside the circle. */
        int32_t lo = (int32_t)ceil(cc - span - 0.5), hi = (int32_t)floor(cc + span - 0.5) + 1;
        lo = lo < 0 ? 0 : lo > o->columns ? o->columns : lo;
        hi = hi < lo ? lo : hi > o->columns ? o->columns : hi;
        int16_t *line = stored + (size_t)row * o->columns;
        for (int32_t col = 0; col < lo; col++)
            line[col] = pad;
        for (int32_t col = hi; col < o->columns; col++)
            line[col] = pad;
    }
}

/* The slice's geometry: the tables, textures, bleeds and streaks. */
static void prepare_slice(const ich_phantom_options *o, const anatomy *A, const bleed *bleeds,
                          int nb, int32_t patient, int32_t study, int32_t slice, slice_geo *g)
{
    g->t = A->t_offset + A->t_span * (slice + 0.5) / o->slices;
    g->cosr = cos(A->angle);
    g->sinr = sin(A->angle);
    g->ventricle = ich_phantom_ventricle_size(A, g->t);
    ich_phantom_make_tables(A, g);
    ich_phantom_make_texture(o->seed, patient, g);
    ich_phantom_slice_bleeds(bleeds, nb, g);
    ich_phantom_make_streaks(o->seed, patient, study, g);
}

/* Blood, oedema or neither at one pixel: updates *hu and *cls. */
static void add_bleeds(const anatomy *A, const slice_geo *g, const pixel *p, double x,
                       double y, double gy, double *hu, int *cls, int64_t blood[5])
{
    int owner = -1, edema = 0;
    for (int k = 0; k < g->bleeds; k++)
        if (ich_phantom_bleed_covers(&g->bleed[k], p, x, y, gy, &edema))
            owner = k; /* a later bleed lies over an earlier one */
    if (owner >= 0) {
        const bleed *b = g->bleed[owner].b;
        /* Clots are not uniform: a few HU of texture. */
        *hu = b->hu + 3 * ich_phantom_texture(g->grain, x, y);
        *cls = ICH_PHANTOM_EPIDURAL + b->type;
        blood[b->type]++;
    } else if (edema) {
        /* Vasogenic oedema: darker than white matter. */
        *hu = A->white_hu - 10 + 2 * ich_phantom_texture(g->texture, x, y);
        *cls = ICH_PHANTOM_EDEMA;
    }
}

ich_status ich_phantom_draw(const ich_phantom_options *o, int32_t patient, int32_t study,
                            int32_t slice, int16_t *stored, uint8_t *tissue,
                            int64_t blood_pixels[5], double *intercept)
{
    slice_geo *g = malloc(sizeof *g);
    if (!g)
        return ich_fail(ICH_ERR_NO_MEMORY, "phantom: out of memory");
    anatomy A;
    bleed bleeds[PH_MAX_BLEEDS];
    ich_phantom_make_anatomy(o, patient, study, &A);
    int nb = ich_phantom_make_bleeds(o, &A, patient, study, bleeds);
    prepare_slice(o, &A, bleeds, nb, patient, study, slice, g);

    double mm = ich_phantom_spacing(o);
    double cx = 0.5 * o->columns * mm + A.shift_x, cy = 0.5 * o->rows * mm + A.shift_y;
    ich_rng noise = ich_phantom_stream(o->seed, TAG_NOISE, patient,
                                       (uint64_t)study << 24 | (uint32_t)slice);
    double sd = o->noise > 0 ? ich_phantom_white_sd(o->noise * A.noise_factor, A.kernel) : 0;
    double b = ich_phantom_intercept(o, patient, study);
    memset(blood_pixels, 0, 5 * sizeof *blood_pixels);
    noise_spare spare = {0, 0};

    /* Nothing but air (and noise) farther than this from the head's centre. */
    double reach = g->edge_max + A.scalp_mm + 13;
    int16_t air = to_stored(-1000, b);
    for (int32_t row = 0; row < o->rows; row++) {
        double py = (row + 0.5) * mm - cy;
        double span2 = reach * reach - py * py;
        int32_t lo = o->columns, hi = o->columns; /* columns [lo, hi) may be head */
        if (span2 > 0) {
            double span = sqrt(span2);
            lo = (int32_t)floor((cx - span) / mm - 0.5);
            hi = (int32_t)ceil((cx + span) / mm - 0.5) + 1;
            lo = lo < 0 ? 0 : lo > o->columns ? o->columns : lo;
            hi = hi < lo ? lo : hi > o->columns ? o->columns : hi;
        }
        for (int32_t col = 0; col < o->columns; col++) {
            if (col < lo || col >= hi) {
                size_t i = (size_t)row * o->columns + col;
                if (tissue)
                    tissue[i] = ICH_PHANTOM_AIR;
                if (stored)
                    stored[i] = sd > 0 ? to_stored(-1000 + sd * next_noise(&noise, &spare), b)
                                       : air;
                continue;
            }
            double px = (col + 0.5) * mm - cx;
            /* Head coordinates: x to the patient's left, y front to back. */
            double x = g->cosr * px + g->sinr * py, y = -g->sinr * px + g->cosr * py;
            pixel p;
            ich_phantom_anatomy_at(&A, g, x, y, &p);
            double hu = p.hu;
            int cls = PUBLIC_TISSUE[p.tissue];
            if (g->bleeds && p.tissue >= T_SURFACE_CSF)
                add_bleeds(&A, g, &p, x, y, py, &hu, &cls, blood_pixels);
            size_t i = (size_t)row * o->columns + col;
            if (tissue)
                tissue[i] = (uint8_t)cls;
            if (!stored)
                continue;
            if (p.inside >= 0) {
                double art = 0;
                if (p.inside < 30) { /* cupping: the periphery denser */
                    double c = 1 - p.inside / 30;
                    art = A.cup_hu * c * c;
                }
                if (g->t < 0.3)
                    art = ich_phantom_artifacts(g, x, y, p.inside, art);
                hu += art;
            }
            stored[i] = to_stored(sd > 0 ? hu + sd * next_noise(&noise, &spare) : hu, b);
        }
    }
    /* The reconstruction kernel: partial volume and correlated noise. */
    if (stored) {
        ich_phantom_kernel(stored, g->ring, o->rows, o->columns, A.kernel);
        if (A.padding_hu != 0)
            pad_outside_circle(o, stored, to_stored(A.padding_hu, b));
    }
    if (intercept)
        *intercept = b;
    free(g);
    return ICH_OK;
}
