/* The skull base and the posterior fossa, the lowest slices (t < 0.34).
 *
 * Real low slices are three fossae, not a ring of brain: in front the
 * orbits (globes in fat) with the ethmoid cells between them, the frontal
 * sinus above them; at the sides the middle cranial fossae holding the
 * temporal lobes, closed in front by the curved greater sphenoid wings and
 * behind by the petrous bones (dense wedges, widest laterally where the
 * mastoid air cells are); in the middle the sphenoid sinus, the clivus and
 * the dorsum sellae; behind, the posterior fossa with the pons (or the
 * medulla lower down), the prepontine cistern in front of it, the fourth
 * ventricle behind it and the cerebellum with its folia around them. Higher
 * up the midbrain sits in the ambient cistern with the suprasellar cistern
 * in front. Dense, irregular bone next to air is what makes these slices
 * hard (and where the scanner's beam hardening is worst, scanner.c); no
 * blood is drawn in bone or air.
 *
 * Speed: each structure first tests a bounding box, and no libm call but
 * sqrt is made per pixel. */
#include <math.h>

#include "phantom/phantom_internal.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

static int done(pixel *p, int tissue, double hu)
{
    p->tissue = tissue;
    p->hu = hu;
    return 1;
}

static double clamp01(double x)
{
    return x < 0 ? 0 : x > 1 ? 1 : x;
}

/* Air cells `size` mm across with bony septa: 1 when (x, y) is in one.
 * `fill` (0..1) is the share of the cells that are aerated; the rest are
 * bone (sclerotic mastoids, partly pneumatised sinuses). */
static int air_cell(const slice_geo *g, double x, double y, double size, double fill, pixel *p)
{
    /* Warped by the smooth textures: irregular cells, not a grid. */
    double wu = ich_phantom_texture(g->texture, x, y), wv = ich_phantom_texture(g->grain, y, x);
    double u = x / size + 0.37 + 1.3 * wu, v = y / size + 0.61 + 1.3 * wv;
    double iu = floor(u), iv = floor(v);
    double fu = u - iu, fv = v - iv;
    double wall = fu < 1 - fu ? fu : 1 - fu, w2 = fv < 1 - fv ? fv : 1 - fv;
    wall = wall < w2 ? wall : w2;
    double grain = ich_phantom_texture(g->grain, x, y);
    /* A cell's own random number decides whether it holds air. */
    uint32_t h = (uint32_t)(int32_t)iu * 0x9E3779B1u ^ (uint32_t)(int32_t)iv * 0x85EBCA77u;
    h ^= h >> 15;
    h *= 0x2C1B3C6Du;
    h ^= h >> 12;
    if (wall < 0.12 + 0.05 * grain || (double)(h & 0xFFFF) >= fill * 65536.0)
        return done(p, T_BONE, 700 + 300 * grain);
    return done(p, T_SINUS, -960 + 20 * grain);
}

/* Distance from (x, y) to the segment (x0, y0)-(x1, y1); *along gets the
 * position along it (0..1). */
static double segment_distance(double x, double y, double x0, double y0, double x1, double y1,
                               double *along)
{
    double dx = x1 - x0, dy = y1 - y0;
    double u = ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy);
    u = u < 0 ? 0 : u > 1 ? 1 : u;
    *along = u;
    double ex = x - x0 - u * dx, ey = y - y0 - u * dy;
    return sqrt(ex * ex + ey * ey);
}

/* Orbits (fat around the globe, the optic nerve and the muscles) and the
 * ethmoid cells between them; the nasal soft tissue in front. */
static int orbit_level(const anatomy *A, const slice_geo *g, double x, double y, pixel *p)
{
    double a = A->half_width * g->scale, b = A->half_length * g->scale, ax = fabs(x);
    double cx = 0.42 * a, cy = -0.66 * b;
    double ox = (ax - cx) / 16, oy = (y - cy) / 19;
    double o2 = ox * ox + oy * oy;
    if (o2 < 1) {
        /* The globe sits in the front of the orbit; smaller at its pole. */
        double rg = 11.5 * sqrt(clamp01(1 - (g->t - 0.07) * (g->t - 0.07) * 250));
        double gx = ax - cx, gy = y - cy + 5;
        if (gx * gx + gy * gy < rg * rg)
            return done(p, T_SCALP, 14 + 3 * ich_phantom_texture(g->grain, x, y));
        /* Lens-shaped orbital wall of bone around the fat. */
        if (o2 > 0.8)
            return done(p, T_BONE, 600 + 250 * ich_phantom_texture(g->grain, x, y));
        /* Optic nerve and the medial and lateral rectus muscles. */
        double nerve = (ax - cx) - 0.35 * (y - cy - 6);
        if ((fabs(nerve) < 2.2 && y > cy + 4) || fabs(ax - cx + 12.5) < 1.8 ||
            fabs(ax - cx - 12.5) < 1.8)
            return done(p, T_SCALP, 38);
        return done(p, T_FAT, -90 + 12 * ich_phantom_texture(g->grain, x, y));
    }
    if (ax < 0.22 * a && y < -0.28 * b)
        return air_cell(g, x, y, 4.0, 0.9, p);
    if (y < -0.42 * b)
        return done(p, T_SCALP, 42); /* temporalis and the face's soft tissue */
    return 0;
}

/* The petrous ridge of one side: from the apex beside the clivus to the
 * mastoid, as the segment (12, 2)-(0.74 a, 0.30 b) in (|x|, y). */
static void ridge(const anatomy *A, const slice_geo *g, double *x0, double *y0, double *x1,
                  double *y1)
{
    *x0 = 12;
    *y0 = 2;
    *x1 = 0.74 * A->half_width * g->scale;
    *y1 = 0.30 * A->half_length * g->scale;
}

/* Petrous bone: a dense wedge, narrow at the apex, broad and mixed with
 * air cells laterally (the mastoid), with the dark inner ear canals. */
static int petrous(const anatomy *A, const slice_geo *g, double x, double y, pixel *p)
{
    double t = g->t, ax = fabs(x);
    if (t >= 0.2 || y < -4 || ax < 8)
        return 0;
    double x0, y0, x1, y1, along;
    ridge(A, g, &x0, &y0, &x1, &y1);
    double d = segment_distance(ax, y, x0, y0, x1, y1, &along);
    if (d >= 17.8) /* wider than the widest wedge: (0.6 + 13) * 1.3 */
        return 0;
    double grain = ich_phantom_texture(g->grain, x, y);
    double level = clamp01((0.2 - t) / 0.1); /* fuller lower down */
    double w = (0.6 + 9.0 * along * level + 4.0 * level) * (0.8 + 0.5 * grain);
    if (d >= w || (level < 0.3 && grain < -0.2)) /* the crest, broken higher up */
        return 0;
    /* The ridge's crest: the posterior face is steeper than the anterior. */
    if (along > 0.55 && level > 0.3)
        return air_cell(g, x, y, 2.6, 0.75, p); /* mastoid */
    double ix = ax - (x0 + 0.45 * (x1 - x0)), iy = y - (y0 + 0.45 * (y1 - y0));
    if (t > 0.1 && t < 0.18 && ix * ix + iy * iy < 4.0)
        return done(p, T_SCALP, 20); /* the inner ear and internal auditory canal */
    return done(p, T_BONE, 1300 + 400 * grain);
}

/* Posterior-medial side of the petrous ridge, inside the skull: the
 * posterior fossa (at t < 0.22). */
static int in_posterior_fossa(const anatomy *A, const slice_geo *g, double x, double y)
{
    double x0, y0, x1, y1;
    ridge(A, g, &x0, &y0, &x1, &y1);
    double ax = fabs(x);
    if (ax < x0)
        return y > y0;
    return (x1 - x0) * (y - y0) - (y1 - y0) * (ax - x0) > 0;
}

/* Brainstem, fourth ventricle, cerebellum (below the tentorium, t < 0.22). */
static int posterior_fossa(const anatomy *A, const slice_geo *g, double x, double y,
                           double inside, pixel *p)
{
    double t = g->t, ax = fabs(x);
    double wide = 1.0 + 2.0 * A->age; /* cisterns widen with atrophy */
    /* Pons, the medulla below it: a round stem with a flat front. */
    double rs = 7.5 + 40 * (t < 0.14 ? t : 0.14);
    rs = rs > 12.5 ? 12.5 : rs;
    if (inside < A->surface_csf_mm)
        return done(p, T_SURFACE_CSF, A->csf_hu);
    double front = 2.0 + wide, cy = front + rs;
    double dx = x, dy = (y - cy) * (y < cy ? 1.25 : 1.0);
    double r2 = dx * dx + dy * dy;
    if (y > 2 && y < front)
        return ax < rs + wide ? done(p, T_CISTERN, A->csf_hu) /* prepontine */
                              : done(p, T_GREY, A->grey_hu - 1);
    if (r2 < rs * rs) {
        double tex = 1.2 * ich_phantom_texture(g->texture, x, y);
        return done(p, T_WHITE, 0.5 * (A->grey_hu + A->white_hu) - 1 + tex);
    }
    /* Fourth ventricle behind it: a bean with its hollow backwards. */
    double vy = cy + rs + 2.5 + 2.5 * A->age, vx = ax / (4.0 + 1.5 * A->age);
    double vv = (y - vy) / (2.6 + 0.8 * A->age) + 0.6 * vx * vx;
    if (t > 0.05 && vx * vx + vv * vv < 1)
        return done(p, T_VENTRICLE, A->csf_hu);
    if (y < cy && r2 < (rs + wide) * (rs + wide))
        return done(p, T_CISTERN, A->csf_hu); /* in front of and beside the stem */
    /* Cisterna magna behind the vermis, larger with age. */
    double b = A->half_length * g->scale;
    if (t < 0.1 && ax < 3 + 5 * A->age && y > 0.75 * b && inside < 10 * A->age + 2)
        return done(p, T_CISTERN, A->csf_hu);
    /* Cerebellum: grey-ish, with curved folia (fine dark lines) around the
     * fourth ventricle and the vermis in the middle. */
    double tex = ich_phantom_texture(g->texture, x, y);
    double hu = A->grey_hu - 2 + 1.2 * tex;
    if (ax > 5 && inside > 2) {
        double fx = ax - 6, fy = y - vy;
        double rf = sqrt(fx * fx + fy * fy) + 5.0 * ich_phantom_texture(g->grain, x, y) +
                    3.0 * ich_phantom_texture(g->texture, y, x);
        double fol = rf * (1.0 / 3.4);
        fol = fabs(fol - floor(fol) - 0.5) * 2; /* triangle 0..1 */
        if (fol > 0.86 + 0.1 * tex)
            return done(p, T_SULCUS, A->csf_hu + 0.3 * (A->grey_hu - A->csf_hu));
    }
    return done(p, T_GREY, hu - (ax < 7 ? 1 : 0)); /* the vermis a little darker */
}

/* Midbrain (cerebral peduncles in front, tectum behind) in the ambient
 * cistern, the interpeduncular and suprasellar cisterns in front of it,
 * the quadrigeminal cistern behind, and the temporal horns. */
int ich_phantom_midbrain(const anatomy *A, const slice_geo *g, double x, double y, pixel *p)
{
    double t = g->t, ax = fabs(x);
    double wide = 1.5 + 2.5 * A->age;
    if (ax > 40 || y < -30 || y > 34)
        return 0;
    double a = A->half_width * g->scale;
    /* Temporal horns: small CSF commas in the medial temporal lobes. */
    double hx = (ax - 0.42 * a) / (1.2 + 1.8 * A->age), hy = (y + 2) / 7;
    if (t > 0.2 && t < 0.34 && hx * hx + hy * hy < 1)
        return done(p, T_VENTRICLE, A->csf_hu);
    /* The midbrain: two peduncles (lobes forwards and out), the tectum. */
    double dy = y - 8, r = sqrt(x * x + dy * dy), rm = 11.5;
    double c = r > 0 ? -dy / r : 0, s = r > 0 ? ax / r : 0; /* angle from the front */
    double c2 = c * c - s * s;                                /* cos 2 phi */
    double out = rm * (1.0 + 0.12 * c2 - 0.1 * c);
    if (c > 0.9 && ax < 2.5 + A->age) /* the interpeduncular fossa */
        out = r;
    if (r < out) {
        double tex = 1.0 * ich_phantom_texture(g->texture, x, y);
        return done(p, T_WHITE, 0.5 * (A->grey_hu + A->white_hu) + tex);
    }
    if (r < out + wide)
        return done(p, T_CISTERN, A->csf_hu); /* ambient */
    /* Suprasellar cistern: a five-pointed star in front. */
    double sy = y + 10, rr = sqrt(x * x + sy * sy);
    if (rr < 14) {
        double sc = rr > 0 ? -sy / rr : 1, ss = rr > 0 ? x / rr : 0;
        double sc2 = sc * sc - ss * ss, ss2 = 2 * sc * ss;
        double c5 = (sc2 * sc2 - ss2 * ss2) * sc - 2 * sc2 * ss2 * ss; /* cos 5 phi */
        if (t > 0.2 && rr < (6.5 + 3 * A->age) * (1 + 0.3 * c5))
            return done(p, T_CISTERN, A->csf_hu);
    }
    double qy = y - 8 - rm - 3.5;
    if (t > 0.26 && x * x + qy * qy < 14 + 12 * A->age)
        return done(p, T_CISTERN, A->csf_hu); /* quadrigeminal */
    return 0;
}

int ich_phantom_skull_base(const anatomy *A, const slice_geo *g, double x, double y,
                           double inside, pixel *p)
{
    double t = g->t, a = A->half_width * g->scale, b = A->half_length * g->scale, ax = fabs(x);
    if (t < 0.13 && orbit_level(A, g, x, y, p))
        return 1;
    /* Sphenoid sinus with its septum, the clivus behind it, the dorsum
     * sellae higher up. */
    double sy = (y + 0.22 * b) / (0.12 * b);
    if (t < 0.16 && ax * ax / 150 + sy * sy < 1)
        return ax < 0.8 ? done(p, T_BONE, 700) : air_cell(g, x, y, 15.0, 0.9, p);
    if (t < 0.2 && ax < 9.2) { /* clx^2 < 1.3 at most: |x| < 1.15 * 8 */
        double clx = ax / (8.0 - 60 * (t > 0.14 ? t - 0.14 : 0));
        double cly = (y + 0.05 * b) / (0.07 * b);
        if (clx * clx + cly * cly < 1 + 0.3 * ich_phantom_texture(g->grain, x, y))
            return done(p, T_BONE, 950 + 250 * ich_phantom_texture(g->grain, x, y));
    }
    /* Greater sphenoid wings: the curved front wall of each middle fossa
     * (the box test first: most pixels are far from them). */
    double reach = t < 0.14 ? 1.1 : 0.35; /* higher up only the clinoid processes */
    if (t < 0.19 && y < -0.1 * b && y > -0.55 * b && ax > 9) {
        double u = (ax - 10) / (0.85 * a - 10); /* 0 at the clinoid, 1 at the side */
        double wing_y = -0.2 * b - 0.22 * b * u * u + 0.04 * b * u;
        double grain = ich_phantom_texture(g->grain, x, y);
        double wing = (1.6 + 2.5 * u) * (1 + 0.5 * grain) * (t < 0.12 ? 1.5 : 1.0);
        if (u < reach && fabs(y - wing_y) < wing)
            return done(p, T_BONE, 850 + 350 * grain);
        if (u < 1.1 && y < wing_y && t < 0.1) /* below the wing: the orbit's floor */
            return done(p, T_SCALP, 40);
    }
    /* Frontal sinus in the frontal bone above the orbits. */
    if (t >= 0.1 && t < 0.22 && ax < 16 && y < -0.6 * b && inside < 10)
        return air_cell(g, x, y, 11.0, 0.9, p);
    if (petrous(A, g, x, y, p))
        return 1;
    if (t < 0.22 && in_posterior_fossa(A, g, x, y))
        return posterior_fossa(A, g, x, y, inside, p);
    return 0;
}
