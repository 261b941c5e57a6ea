"""Acoustic features: Kaldi-compatible filterbanks (kaldi-native-fbank) and CMVN."""
