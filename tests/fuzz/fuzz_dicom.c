/* libFuzzer target: arbitrary bytes through ich_dicom_read_memory() and, when
 * they decode, through a window recipe with resizing. Build and run it with
 * scripts/fuzz.sh. Any abort (GDCM's assertions included), crash, sanitizer
 * report or leak is a finding, and so is any input that takes more than
 * the 1 GB RSS (or 512 MB in one allocation) fuzz.sh allows: libich's
 * default DICOM limits (ich_dicom_limits) keep one file well below that. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <ich/ich.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    ich_dicom *dicom = NULL;
    if (ich_dicom_read_memory(data, size, "fuzz input", &dicom) != ICH_OK)
        return 0;
    int32_t rows = 0, columns = 0;
    ich_dicom_size(dicom, &rows, &columns);
    ich_window *window = NULL;
    if (ich_window_create(&window) == ICH_OK && ich_window_add_list(window, "brain,bone") == ICH_OK &&
        ich_window_set_size(window, 17, 23, ICH_RESIZE_AREA) == ICH_OK) {
        uint8_t out[2 * 17 * 23];
        ich_window_apply_u8(window, ich_dicom_hu(dicom), rows, columns, out, sizeof out);
    }
    ich_window_free(window);
    ich_dicom_free(dicom);
    return 0;
}
