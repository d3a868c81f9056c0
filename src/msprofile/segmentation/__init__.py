"""Segmentation of ventricles and lesions with a 2-D Attention U-Net (docs/method.md section 3)."""
