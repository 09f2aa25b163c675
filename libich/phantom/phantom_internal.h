/* Internal: drawing one phantom slice (draw.c), used by phantom.c. */
#ifndef ICH_INTERNAL_PHANTOM_H
#define ICH_INTERNAL_PHANTOM_H

#include <stdint.h>

#include "ich/phantom.h"

/* The field of view is fixed in mm, so a smaller image is the same head at
 * a coarser pixel spacing; the series always spans the head's height. */
#define ICH_PHANTOM_FOV_MM 230.0
#define ICH_PHANTOM_HEIGHT_MM 120.0

/* Pixel spacing (mm, square pixels) and slice thickness of a phantom. */
double ich_phantom_spacing(const ich_phantom_options *o);
double ich_phantom_thickness(const ich_phantom_options *o);

/* Draw slice `slice` of study `study` of patient `patient` (already checked)
 * into `stored` (rows * columns stored values, HU = stored - 1024) and set
 * blood_pixels[type] to the number of pixels of each hemorrhage type
 * (epidural, intraparenchymal, intraventricular, subarachnoid, subdural)
 * in it. Returns ICH_ERR_NO_MEMORY or ICH_OK. */
ich_status ich_phantom_draw(const ich_phantom_options *o, int32_t patient, int32_t study,
                            int32_t slice, int16_t *stored, int64_t blood_pixels[5]);

/* Fewest pixels of a type for its label to be positive in a slice. */
int64_t ich_phantom_min_pixels(const ich_phantom_options *o);

#endif
