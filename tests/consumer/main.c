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
    /* The network runs through the installed library too (oneDNN, OpenBLAS
     * found at run time): a tiny model gives finite logits. */
    ich_model *model = NULL;
    float image[2 * 8 * 8], logits[3];
    for (int i = 0; i < 2 * 8 * 8; i++)
        image[i] = (float)(i % 7) / 7.0f;
    if (ich_model_create("input 2x8x8, conv 4 3 pad 1, relu, maxpool 2, flatten, linear 3",
                         &model) != ICH_OK ||
        ich_model_forward(model, image, 1, logits, 3) != ICH_OK || logits[0] != logits[0]) {
        fprintf(stderr, "model: %s\n", ich_last_error());
        ich_model_free(model);
        return 1;
    }
    ich_model_free(model);
    printf("consumer: linked libich %s\n", ich_version());
    return 0;
}
