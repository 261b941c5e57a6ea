"""Kaldi tables: data dirs, matrices, int32-vector archives (alignments), Posterior archives."""
from kdhybrid.io.tables import (  # noqa: F401
    AtomicArkWriter,
    Int32VectorWriter,
    KaldiFormatError,
    MatrixWriter,
    read_int32_vector_ark,
    read_matrix_scp,
    read_scp,
    read_text_table,
    write_text_table,
)
from kdhybrid.io.posterior import Posterior, PosteriorReader, PosteriorWriter, read_posterior_ark  # noqa: F401
from kdhybrid.io.datadir import DataDir, read_data_dir, split_data, validate_data_dir, write_data_dir  # noqa: F401
