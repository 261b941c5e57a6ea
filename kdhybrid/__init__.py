"""kdhybrid: knowledge distillation for hybrid DNN-HMM speech recognition.

Kaldi file formats throughout, lhotse for data, PyTorch for the acoustic models and
k2 for decoding. See README.md for the recipe and design.md for the data flow.
"""
__version__ = "0.1.0"
