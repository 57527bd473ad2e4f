from .loader import LoadedRows, load_dataset, load_rows, parse_spec, read_file
from .packing import pack_rows
from .preprocess import RowError, normalize_row
from .split import split_rows
from .preference import ROW_CHECKS, check_kto, check_pair
