"""The data steps: MNIST's shape, fetching and verifying it, preprocessing, augmentation."""
