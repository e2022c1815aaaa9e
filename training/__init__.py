"""Training: data pipeline (tf.data), configs and the ``python -m training.train`` entry point."""
