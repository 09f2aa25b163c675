/* Built against the installed libich: checks the header and library agree
 * and that a real call works through the installed shared object. */
#include <stdio.h>
#include <string.h>

#include <ich/ich.h>

int main(void)
{
    if (ich_version_number() != ICH_VERSION_NUMBER) {
        fprintf(stderr, "header %d, library %d\n", ICH_VERSION_NUMBER, ich_version_number());
        return 1;
    }
    float center = 0, width = 0;
    if (ich_window_preset("brain", &center, &width) != ICH_OK || center != 40 || width != 80) {
        fprintf(stderr, "brain preset: %s\n", ich_last_error());
        return 1;
    }
    ich_dicom *d = NULL;
    if (ich_dicom_read("/nonexistent/slice.dcm", &d) != ICH_ERR_IO ||
        !strstr(ich_last_error(), "slice.dcm")) {
        fprintf(stderr, "expected an I/O error naming the file\n");
        return 1;
    }
    printf("consumer: linked libich %s\n", ich_version());
    return 0;
}
