"""Raw files to tables and pixels: the synthetic world, one adapter per rating format, scales,
splits, and the image cache."""
