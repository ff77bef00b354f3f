"""The data steps: MNIST's shape, fetching and verifying it, preprocessing, augmentation,
reading the splits back, and reading files from outside (images, downloads) safely."""
