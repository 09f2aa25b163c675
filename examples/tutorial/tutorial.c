/*
 * The tutorial's steps 5 to 9 in C, with libich: the dataset, the ConvNet,
 * the loss and the optimizer, the training loop, and the evaluation.
 *
 * The tutorial does this in PyTorch:
 *
 *   dataset = ...; loader = DataLoader(dataset, batch_size=16, shuffle=True)
 *   net = ConvNet(); criterion = nn.BCEWithLogitsLoss()
 *   optimizer = optim.Adam(net.parameters(), lr=1e-3)
 *   for epoch in range(epochs):
 *       for images, labels in loader:
 *           optimizer.zero_grad()
 *           loss = criterion(net(images), labels)
 *           loss.backward()
 *           optimizer.step()
 *
 * Here every line of that loop is one libich call. (ich_train() in
 * <ich/train.h> runs the same loop with validation, schedules, early
 * stopping and checkpoints; ich-train is its command-line front end.)
 *
 * Usage:  tutorial [DATA_DIR] [--size N] [--epochs N]
 *
 * DATA_DIR holds labels.csv (RSNA format) and images/ with the DICOM
 * slices; when it has no labels.csv, the program first writes libich's
 * synthetic head-CT phantom there (default folder: tutorial-data). The
 * tutorial's ConvNet takes 1 x 512 x 512 images (--size 512, the
 * "tutorial" preset); the default --size 128 builds the same layers for
 * 128 x 128 input (only the first linear layer's width changes), which
 * trains in a minute on two cores. Sizes too small for the four conv/pool
 * blocks (below 72) are refused with the range that works.
 *
 * The saved checkpoint carries the label names and the preprocessing
 * recipe (metadata "ich.labels", "ich.recipe"), so ich-predict and
 * ich-evaluate feed it exactly what it learnt from.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <ich/ich.h>

#define BATCH 16

/* Stop with libich's message when a call fails. */
#define CHECK(call)                                                                   \
    do {                                                                              \
        ich_status status_ = (call);                                                  \
        if (status_ != ICH_OK) {                                                      \
            fprintf(stderr, "tutorial: %s failed: %s\n", #call, ich_last_error());    \
            exit(1);                                                                  \
        }                                                                             \
    } while (0)

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The data: a phantom written on first use (24 patients, 12 slices each,
 * half of the series with a bleed). */
static void ensure_data(const char *dir, int size)
{
    char labels[4096];
    snprintf(labels, sizeof labels, "%s/labels.csv", dir);
    if (file_exists(labels))
        return;
    printf("Writing the synthetic phantom into %s ...\n", dir);
    ich_phantom_options o;
    ich_phantom_options_init(&o);
    o.patients = 24;
    o.slices = 12;
    o.rows = o.columns = size < 64 ? 64 : size;
    o.seed = 1;
    CHECK(ich_phantom_write(dir, &o, NULL));
}

/* ---- Step 5: the dataset -------------------------------------------------- */

/* The tutorial's preprocessing, step by step as it writes it:
 *   img = (img - img.min()) / (img.max() - img.min() + 1e-5)  # raw pixels, no window
 *   img = Image.fromarray((img * 255).astype(np.uint8))      # the uint8 step
 *   transforms.Resize(512)      # Pillow's bilinear, antialiased when shrinking
 *   transforms.ToTensor()       # / 255
 *   transforms.Normalize(0.380, 0.236)
 * (as text: ich_window_from_string("windows=none;mode=minmax;size=512x512;
 *  resize=antialias;quantize=1;mean=0.38;std=0.236;neighbors=0")) */
static ich_window *tutorial_recipe(int size)
{
    ich_window *w = NULL;
    const float mean = 0.380f, std = 0.236f;
    CHECK(ich_window_create(&w));                   /* no windows: the raw pixels */
    CHECK(ich_window_set_mode(w, ICH_WINDOW_MINMAX));
    CHECK(ich_window_set_quantize(w, 1));
    CHECK(ich_window_set_size(w, size, size, ICH_RESIZE_ANTIALIAS));
    CHECK(ich_window_set_normalization(w, &mean, &std, 1));
    return w;
}

/* Train and validation tables, split by patient (no patient in both). */
static void split_by_patient(const char *dir, ich_labels **train, ich_labels **val)
{
    char path[4096], images[4096];
    snprintf(path, sizeof path, "%s/labels.csv", dir);
    snprintf(images, sizeof images, "%s/images", dir);
    ich_labels *all = NULL, *parts[3];
    CHECK(ich_labels_read(path, &all));
    CHECK(ich_labels_groups_from_dicom(all, images, 0, NULL));
    ich_split_options o;
    ich_split_options_init(&o);
    o.ratios[0] = 0.8; /* the tutorial's 80/20 */
    o.ratios[1] = 0.2;
    o.ratios[2] = 0;
    CHECK(ich_labels_split(all, &o, parts));
    *train = parts[0];
    *val = parts[1];
    ich_labels_free(parts[2]);
    ich_labels_free(all);
}

static ich_dataset *open_dataset(const ich_labels *labels, const char *dir,
                                 const ich_window *recipe, int shuffle)
{
    char images[4096];
    snprintf(images, sizeof images, "%s/images", dir);
    ich_dataset_options o;
    ich_dataset_options_init(&o);
    o.window = recipe;
    o.batch_size = BATCH;
    o.shuffle = shuffle; /* DataLoader(shuffle=True) for training */
    o.seed = 0;
    ich_dataset *ds = NULL;
    CHECK(ich_dataset_open(labels, images, &o, &ds));
    return ds;
}

/* ---- Step 6: the ConvNet -------------------------------------------------- */

/* Four conv + ReLU + 2x2 max pool blocks (50, 120, 100, 72 channels;
 * kernels 5, 5, 5, 4), then linear -> 50, ReLU, linear -> 6. */
static ich_status build_convnet(int size, ich_model **net)
{
    if (size == 512)
        return ich_model_create_preset("tutorial", net);
    char spec[512];
    snprintf(spec, sizeof spec,
             "input 1x%dx%d, conv 50 5, relu, maxpool 2, conv 120 5, relu, maxpool 2, "
             "conv 100 5, relu, maxpool 2, conv 72 4, relu, maxpool 2, flatten, "
             "linear 50, relu, linear 6",
             size, size);
    return ich_model_create(spec, net);
}

/* The smallest size the ConvNet takes: below it the last pooling leaves no
 * pixel for the linear layer. Found by asking the network itself, so it
 * stays right if the layers change (each block only shrinks the image, so
 * every larger size works too). */
static int smallest_size(void)
{
    for (int size = 1; size <= 1024; size++) {
        ich_model *net = NULL;
        if (build_convnet(size, &net) == ICH_OK) {
            ich_model_free(net);
            return size;
        }
    }
    return 0;
}

static ich_model *tutorial_convnet(int size)
{
    ich_model *net = NULL;
    CHECK(build_convnet(size, &net));
    CHECK(ich_model_init_weights(net, 0)); /* PyTorch's default initialisation */
    return net;
}

/* ---- Step 9: evaluation --------------------------------------------------- */

/* Accuracy on the validation set: a probability sigmoid(logit) > 0.5
 * predicts 1 (libich's one rule, as the metrics and ich_train() count it);
 * per label and over all of them. */
static void evaluate(ich_model *net, ich_dataset *val, float *images, float *labels,
                     size_t image_count, size_t label_count)
{
    int64_t correct[6] = {0}, seen = 0;
    float probs[BATCH * 6];
    CHECK(ich_model_set_training(net, 0)); /* net.eval() */
    CHECK(ich_dataset_start_epoch(val, 0));
    for (;;) {
        int32_t n = 0;
        CHECK(ich_dataset_next_batch(val, images, image_count, labels, label_count, &n, NULL));
        if (n == 0)
            break;
        CHECK(ich_model_predict(net, images, n, 0.5f, probs, (size_t)n * 6)); /* sigmoid */
        for (int32_t i = 0; i < n; i++)
            for (int c = 0; c < 6; c++)
                correct[c] += (probs[i * 6 + c] > 0.5f) == (labels[i * 6 + c] >= 0.5f);
        seen += n;
    }
    const ich_labels *table = ich_dataset_labels(val);
    int64_t total = 0;
    printf("Validation accuracy on %lld images:\n", (long long)seen);
    for (int c = 0; c < 6; c++) {
        printf("  %-18s %.3f\n", ich_labels_column_name(table, c),
               seen ? (double)correct[c] / (double)seen : 0.0);
        total += correct[c];
    }
    printf("  %-18s %.3f\n", "all labels", seen ? (double)total / (double)(6 * seen) : 0.0);
}

int main(int argc, char **argv)
{
    const char *dir = "tutorial-data";
    int size = 128, epochs = 3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--size") == 0 && i + 1 < argc)
            size = atoi(argv[++i]);
        else if (strcmp(argv[i], "--epochs") == 0 && i + 1 < argc)
            epochs = atoi(argv[++i]);
        else if (argv[i][0] != '-')
            dir = argv[i];
        else {
            fprintf(stderr, "usage: tutorial [DATA_DIR] [--size N] [--epochs N]\n");
            return 2;
        }
    }
    int smallest = smallest_size();
    if (size < smallest || size > 1024 || epochs < 0) {
        fprintf(stderr, "tutorial: --size must be %d..1024 (smaller images leave the ConvNet's "
                        "linear layer no pixel) and --epochs >= 0\n", smallest);
        return 2;
    }
    ensure_data(dir, size);

    /* Step 5: the dataset and its loader. */
    ich_window *recipe = tutorial_recipe(size);
    ich_labels *train_labels, *val_labels;
    split_by_patient(dir, &train_labels, &val_labels);
    ich_dataset *train = open_dataset(train_labels, dir, recipe, 1);
    ich_dataset *val = open_dataset(val_labels, dir, recipe, 0);
    printf("Step 5: %lld training and %lld validation images, %dx%d\n",
           (long long)ich_dataset_length(train), (long long)ich_dataset_length(val), size, size);

    /* Step 6: the ConvNet. */
    ich_model *net = tutorial_convnet(size);
    printf("Step 6: the ConvNet: %s\n", ich_model_spec(net));

    /* Step 7: the loss (BCE with logits, in the loop below) and Adam. */
    ich_optimizer_options adam;
    ich_optimizer_options_init(&adam, ICH_OPTIM_ADAM); /* lr 1e-3, betas (0.9, 0.999) */
    ich_optimizer *optimizer = NULL;
    CHECK(ich_optimizer_create(net, &adam, &optimizer));

    /* Step 8: the training loop. */
    size_t image_count = (size_t)BATCH * size * size, label_count = BATCH * 6;
    float *images = malloc(image_count * sizeof *images);
    float *labels = malloc(label_count * sizeof *labels);
    float logits[BATCH * 6], grad[BATCH * 6];
    if (!images || !labels) {
        fprintf(stderr, "tutorial: out of memory\n");
        return 1;
    }
    for (int epoch = 0; epoch < epochs; epoch++) {
        CHECK(ich_model_set_training(net, 1)); /* net.train() */
        CHECK(ich_dataset_start_epoch(train, epoch)); /* a new shuffle each epoch */
        double running = 0;
        int batches = 0;
        for (;;) {
            int32_t n = 0;
            CHECK(ich_dataset_next_batch(train, images, image_count, labels, label_count, &n,
                                         NULL));
            if (n == 0)
                break;
            float loss = 0;
            CHECK(ich_model_zero_grad(net));                                  /* zero_grad() */
            CHECK(ich_model_forward(net, images, n, logits, (size_t)n * 6));  /* net(images) */
            CHECK(ich_loss_bce_with_logits(logits, labels, n, 6, NULL, NULL,  /* criterion */
                                           &loss, grad));
            CHECK(ich_model_backward(net, grad, (size_t)n * 6));              /* backward() */
            CHECK(ich_optimizer_step(optimizer));                             /* step() */
            running += loss;
            batches++;
            printf("\rStep 8: epoch %d/%d, batch %d/%lld, running loss %.4f", epoch + 1, epochs,
                   batches, (long long)ich_dataset_batches(train), running / batches);
            fflush(stdout);
        }
        printf("\n");
    }

    /* Step 9: evaluation. */
    evaluate(net, val, images, labels, image_count, label_count);
    /* The checkpoint says what its outputs mean and how to feed it. */
    const ich_labels *table = ich_dataset_labels(train);
    const char *names[6];
    for (int c = 0; c < 6; c++)
        names[c] = ich_labels_column_name(table, c);
    CHECK(ich_model_set_labels(net, names, 6));
    CHECK(ich_model_set_input_window(net, recipe));
    CHECK(ich_model_save(net, "tutorial.safetensors"));
    printf("Saved the weights as tutorial.safetensors (PyTorch's state_dict names).\n");

    free(images);
    free(labels);
    ich_optimizer_free(optimizer);
    ich_model_free(net);
    ich_dataset_free(train);
    ich_dataset_free(val);
    ich_labels_free(train_labels);
    ich_labels_free(val_labels);
    ich_window_free(recipe);
    return 0;
}
