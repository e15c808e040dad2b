"""Fold checkpoints -> model bundle (ONNX, torch.export, TensorRT)."""
