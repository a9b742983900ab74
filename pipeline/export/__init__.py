"""Deployable models: the embedding path of a trained checkpoint as ONNX, checked with onnxruntime."""
