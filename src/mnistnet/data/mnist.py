"""The shape of MNIST, written once: 28×28 images, 784 pixels, 10 classes.

Every module that needs one of these numbers imports it from here, so the literals appear
nowhere else. It never changes, and as a dependency of every stage it costs no reruns.
"""

SIDE = 28  # pixels per side of an image
SHAPE = (SIDE, SIDE)  # one image, (rows, columns)
PIXELS = SIDE * SIDE  # 784: features of one flattened image (d)
CLASSES = 10  # the digits 0-9 (k)
