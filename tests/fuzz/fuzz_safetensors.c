/* libFuzzer target for safetensors files (model files and checkpoints):
 * the first input byte picks ich_model_load (even: the file's spec builds
 * the network) or ich_model_load_weights / ich_checkpoint_load into a small
 * fixed model and Adam optimizer (odd); the rest is the file. The bytes go
 * to a memory file so the real file-reading code runs. A successful load
 * is used (a forward pass, a save to /dev/null/... that fails). Build and
 * run it as scripts/fuzz.sh runs the others (clang, ICH_FUZZ=ON, ICH_SANITIZE=ON;
 * seed corpus: files ich_model_save and ich_checkpoint_save write for SPEC,
 * behind a first byte 0x00, 0x01 or 0x03). Any crash, sanitizer report or
 * leak is a finding. */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ich/ich.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The network of tests/test_checkpoint.c, so its files make a seed corpus. */
static const char SPEC[] = "input 2x6x6, conv 3 3 pad 1, batchnorm, relu, maxpool 2, flatten, "
                           "dropout 0.5, linear 4";

/* Specs from the file are fuzzed too; keep what they may build small. */
static int spec_is_small(const ich_model *model)
{
    int64_t elements = 0;
    for (int32_t i = 0; i < ich_model_tensor_count(model); i++) {
        ich_tensor_view view = {.size = sizeof view};
        if (ich_model_tensor(model, i, &view) == ICH_OK)
            elements += view.count;
    }
    int32_t c = 0, h = 0, w = 0;
    ich_model_input_shape(model, &c, &h, &w);
    return elements < (1 << 20) && (int64_t)c * h * w < (1 << 16);
}

static void load_model(const char *path)
{
    ich_model *model = NULL;
    if (ich_model_load(path, &model) != ICH_OK)
        return;
    if (spec_is_small(model)) {
        int32_t c = 0, h = 0, w = 0;
        ich_model_input_shape(model, &c, &h, &w);
        size_t n = (size_t)c * h * w, outputs = (size_t)ich_model_outputs(model);
        float *x = calloc(n ? n : 1, sizeof *x), *y = calloc(outputs ? outputs : 1, sizeof *y);
        if (x && y)
            ich_model_forward(model, x, 1, y, outputs);
        free(x);
        free(y);
    }
    ich_model_save(model, "/dev/null/not-a-folder/x.safetensors"); /* fails: clean-up path */
    ich_model_free(model);
}

static void load_into_fixed(const char *path, int checkpoint)
{
    static ich_model *model;
    static ich_optimizer *optimizer;
    if (!model) {
        if (ich_model_create(SPEC, &model) != ICH_OK)
            return;
        ich_optimizer_options o;
        ich_optimizer_options_init(&o, ICH_OPTIM_ADAM);
        if (ich_optimizer_create(model, &o, &optimizer) != ICH_OK)
            return;
    }
    if (checkpoint)
        ich_checkpoint_load(path, model, optimizer);
    else
        ich_model_load_weights(model, path, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int fd = memfd_create("fuzz", 0);
    if (fd < 0)
        return 0;
    if (write(fd, data + 1, size - 1) == (ssize_t)(size - 1)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        /* Specs from the file are loaded whatever their numbers: the
         * library bounds them (ICH_MODEL_MAX_* in ich/model.h) and refuses
         * one whose tensors the file cannot hold before building it. */
        if ((data[0] & 1) == 0)
            load_model(path);
        else
            load_into_fixed(path, data[0] & 2);
    }
    close(fd);
    return 0;
}
