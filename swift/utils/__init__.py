from .errors import SwiftError
from .logger import get_logger
