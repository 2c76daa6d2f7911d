"""CIFAR-10 on a CPU, 40% asymmetric noise: the 10-minute protocol in which CE memorises (docs/benchmarks.md)."""

# 10,000 training images (1,000 a class, a seeded subsample of any CIFAR-10 copy; 10% held out
# with their noisy labels) and 2,000 test images; the cnn_wide backbone, no augmentation, no weight
# decay, SGD 0.02 -> 0.0002 over one cosine cycle of 20 epochs, batch 128.
# Fixed before any MixNN test accuracy was seen, from CE's training data only:
#   - 20 epochs: what keeps a MixNN run near 10 minutes on a 2-core CPU under TensorFlow (CE: about 30 s an epoch);
#   - warmup_epochs=4: CE begins fitting the flipped labels in epoch 5 (the share of wrong labels it
#     predicts first rises 0.05 above its epoch-1 value, under 40% symmetric noise, seed 0);
#   - correction_start=6: 14 correcting epochs, twice the 7 a label needs to change at alpha 0.9.
# Offline: --data-dir ../shared/data/cifar10-10k.npz (or the official python batches).
# --set method=ce / method=mixup give the baselines of the same protocol.
from keras_mixnn.recipe import cpu_cifar

recipe = cpu_cifar("asym40")
