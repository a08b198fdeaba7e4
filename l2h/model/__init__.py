"""The model (rules/train.smk): L2HNet, its low-to-high loss, the training data, training and ONNX export."""
