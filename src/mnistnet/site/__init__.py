"""The draw-a-digit page as a static site, in which the trained network runs (``build``)."""
