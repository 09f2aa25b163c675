/* The skull base, the lowest slices (t < 0.24): orbits with globes and fat,
 * ethmoid, sphenoid and frontal sinuses and mastoid air cells, the greater
 * sphenoid wings, the clivus and the petrous bones. Dense, irregular bone
 * next to air is what makes these slices hard (and where the scanner's
 * beam hardening is worst, scanner.c); no blood is drawn here. */
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

/* Air cells `size` mm across with bony septa: 1 when (x, y) is in one. */
static int air_cell(const slice_geo *g, double x, double y, double size, pixel *p)
{
    /* Warped by the smooth texture: irregular cells, not a grid. */
    double wu = ich_phantom_texture(g->texture, x, y), wv = ich_phantom_texture(g->grain, y, x);
    double u = x / size + 0.37 + 1.3 * wu, v = y / size + 0.61 + 1.3 * wv;
    double fu = u - floor(u), fv = v - floor(v);
    double wall = fu < 1 - fu ? fu : 1 - fu, w2 = fv < 1 - fv ? fv : 1 - fv;
    wall = wall < w2 ? wall : w2;
    double grain = ich_phantom_texture(g->grain, x, y);
    if (wall < 0.12 + 0.05 * grain)
        return done(p, T_BONE, 550 + 200 * grain);
    return done(p, T_SINUS, -960 + 20 * grain);
}

/* Distance from (x, y) to the segment (x0, y0)-(x1, y1). */
static double segment_distance(double x, double y, double x0, double y0, double x1, double y1)
{
    double dx = x1 - x0, dy = y1 - y0;
    double u = ((x - x0) * dx + (y - y0) * dy) / (dx * dx + dy * dy);
    u = u < 0 ? 0 : u > 1 ? 1 : u;
    double ex = x - x0 - u * dx, ey = y - y0 - u * dy;
    return sqrt(ex * ex + ey * ey);
}

/* Orbits (fat around the globe) and the ethmoid cells between them. */
static int orbit_level(const anatomy *A, const slice_geo *g, double x, double y, pixel *p)
{
    double a = A->half_width * g->scale, b = A->half_length * g->scale, ax = fabs(x);
    double ox = (ax - 0.42 * a) / 15, oy = (y + 0.66 * b) / 18;
    if (ox * ox + oy * oy < 1) {
        double gx = ax - 0.42 * a, gy = y + 0.66 * b + 5;
        if (gx * gx + gy * gy < 11.5 * 11.5)
            return done(p, T_SCALP, 12); /* the globe's vitreous */
        return done(p, T_FAT, -90 + 12 * ich_phantom_texture(g->grain, x, y));
    }
    if (ax < 0.2 * a && y < -0.3 * b)
        return air_cell(g, x, y, 4.0, p);
    if (y < -0.42 * b)
        return done(p, T_SCALP, 45); /* temporalis and the face's soft tissue */
    return 0;
}

static int petrous(const slice_geo *g, double x, double y, pixel *p)
{
    if (g->t >= 0.2 || y < -8 || y > 34 || fabs(x) < 5 || fabs(x) > 52)
        return 0;
    /* From the apex (12, 0) to the lateral end (45, 24), per side, wider
     * laterally and irregular. */
    double grain = ich_phantom_texture(g->grain, x, y);
    double w = (2.0 + 14.0 * (0.2 - g->t)) * (0.7 + 0.4 * (fabs(x) - 12) / 33 + 0.35 * grain);
    if (segment_distance(fabs(x), y, 12, 0, 45, 24) < w)
        return done(p, T_BONE, 1250 + 250 * ich_phantom_texture(g->grain, x, y));
    return 0;
}

int ich_phantom_skull_base(const anatomy *A, const slice_geo *g, double x, double y,
                           double inside, pixel *p)
{
    double t = g->t, a = A->half_width * g->scale, b = A->half_length * g->scale, ax = fabs(x);
    if (t < 0.13 && orbit_level(A, g, x, y, p))
        return 1;
    /* Sphenoid sinus with its septum, then the clivus behind it. */
    double sy = (y + 0.24 * b) / (0.13 * b);
    if (t < 0.16 && ax * ax / 144 + sy * sy < 1)
        return ax < 0.8 ? done(p, T_BONE, 700) : air_cell(g, x, y, 9.0, p);
    if (t < 0.16 && ax < 7 && y >= -0.12 * b && y < 0.0)
        return done(p, T_BONE, 950 + 150 * ich_phantom_texture(g->grain, x, y));
    /* Greater sphenoid wings: the front wall of the middle cranial fossa
     * (the box test first: most pixels are far from them). */
    if (t < 0.18 && y < -0.25 * b && y > -0.5 * b && ax > 9) {
        double grain = ich_phantom_texture(g->grain, x, y), wing = 1.8 * (1 + 0.4 * grain);
        if (segment_distance(ax, y, 13, -0.3 * b, 0.45 * a, -0.33 * b) < wing ||
            segment_distance(ax, y, 0.45 * a, -0.33 * b, 0.85 * a, -0.45 * b) < wing)
            return done(p, T_BONE, 900 + 200 * grain);
    }
    /* Frontal sinus in the frontal bone above the orbits. */
    if (t >= 0.12 && ax < 15 && y < -0.6 * b && inside < 10)
        return air_cell(g, x, y, 6.0, p);
    if (petrous(g, x, y, p))
        return 1;
    /* Mastoid air cells behind the petrous bones. */
    if (t < 0.17) {
        double mx = ax - 0.76 * a, my = y - 0.32 * b;
        if (mx * mx + my * my < 81)
            return air_cell(g, x, y, 3.0, p);
    }
    return 0;
}
