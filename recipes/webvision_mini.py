"""Mini-WebVision (first 50 classes, real noise): Table III reports MixNN 75.39/90.71 (WebVision), 70.54/90.31 (ILSVRC12)."""

# Paper, Section 6.2 and Table III (top-1 / top-5 accuracy %, InceptionResNetV2):
#   WebVision validation  75.39 / 90.71
#   ILSVRC12 validation   70.54 / 90.31
# Data: the WebVision 1.0 folder via --data-dir (info/ file lists, the Google images,
# val_images_256/), with the ILSVRC12 validation images of the 50 classes in
# ilsvrc12_val/ inside it or given by --set ilsvrc12_dir=PATH; see docs/recipes.md.
# Setting: keras.applications InceptionResNetV2 from random initialisation (the paper
# pretrains only Clothing1M's ResNet-50; --set weights=imagenet to start from ImageNet),
# images resized to 256x256, random 227x227 crop and flip (centre crop for evaluation),
# batch 32, SGD momentum 0.9, weight decay 5e-4, cosine annealing restarting every
# 10 epochs from 0.01 to 0.001, and otherwise as CIFAR-10: 300 epochs, 10 warm-up
# epochs, E_s = 60, K = 1, alpha = 0.9.
from keras_mixnn.recipe import Recipe

recipe = Recipe(
    dataset="webvision",
    noise="none",
    backbone="inception_resnet_v2",
    weights="none",
    augmentation="crop_flip",
    crop_padding=0,
    image_size=256,
    crop_size=227,
    epochs=300,
    batch_size=32,
    optimizer="sgd",
    learning_rate=0.01,
    schedule="cosine_restarts",
    min_learning_rate=0.001,
    restart_epochs=10,
    sgd_momentum=0.9,
    weight_decay=5e-4,
    weight_decay_mode="coupled",  # PyTorch's weight_decay, as the authors trained
    num_neighbours=1,
    warmup_epochs=10,
    correction_start=60,
    momentum=0.9,
    inference_batch_size=128,
    workers=8,
)
