"""Tools beside the product: the data generator and the benchmark."""
