/*
 * libich: brain-CT hemorrhage classification, from DICOM to report.
 *
 * Include this umbrella header; it pulls in every public part:
 *   <ich/core.h>    version, ich_status codes, ich_last_error(), logging
 *   <ich/dicom.h>   DICOM slice reading (GDCM) and CT slice writing
 *   <ich/window.h>  HU windows, resize, normalisation, DICOM -> PNG
 *   <ich/image.h>   PNG writing and reading
 *   <ich/files.h>   image IDs as file names, walking folders without loops
 *   <ich/labels.h>  label CSVs, scan->slice labels, sampling, selecting
 *                   files, patient-grouped stratified split
 *   <ich/phantom.h> the built-in synthetic head-CT dataset
 *   <ich/augment.h> flips, rotation, brightness/contrast, blur, elastic
 *   <ich/dataset.h> labelled images -> shuffled, prefetched float32 batches
 *   <ich/model.h>   the CNN: spec, presets, forward/backward, safetensors
 *   <ich/optim.h>   loss, optimizers, schedules, early stopping, checkpoints
 *   <ich/train.h>   the training driver: epochs, validation, history, resume
 *   <ich/metrics.h> evaluation metrics: AUC, AP, F1, confusion, log losses
 *   <ich/report.h>  evaluation report: HTML page, SVG plots, CSV and JSON
 *   <ich/pipeline.h> whole folders: DICOM -> PNG, DICOM -> predictions CSV
 *
 * Conventions: every fallible call returns ich_status (ICH_OK is 0) and
 * gives results through out-parameters; on failure ich_last_error() says
 * what went wrong for the calling thread. Handles come in create/free
 * pairs and free(NULL) is a no-op. A handle is used by one thread at a time
 * unless its header says otherwise. Structs passed in or out begin with a
 * `size_t size` member that the caller sets to sizeof(the struct).
 *
 * Link with -lich (pkg-config ich, or find_package(ich) and ich::ich).
 */
#ifndef ICH_ICH_H
#define ICH_ICH_H

#include "ich/core.h"
#include "ich/dicom.h"
#include "ich/image.h"
#include "ich/files.h"
#include "ich/window.h"
#include "ich/labels.h"
#include "ich/phantom.h"
#include "ich/augment.h"
#include "ich/dataset.h"
#include "ich/model.h"
#include "ich/backend.h"
#include "ich/optim.h"
#include "ich/train.h"
#include "ich/metrics.h"
#include "ich/report.h"
#include "ich/pipeline.h"
#include "ich/dist.h"

#endif /* ICH_ICH_H */
