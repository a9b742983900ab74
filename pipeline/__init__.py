"""The retrieval pipeline library: importable, no side effects at import (see README, Layout)."""
