"""Model introspection: summary tables, receptive fields, convolution as a matrix."""

from cnnjax.inspect.linear import conv_as_matrix, singular_values
from cnnjax.inspect.receptive_field import FieldRow, empirical_receptive_field, receptive_field
from cnnjax.inspect.summary import LayerRow, Summary, count_params, summary

__all__ = [
    "FieldRow",
    "LayerRow",
    "Summary",
    "conv_as_matrix",
    "count_params",
    "empirical_receptive_field",
    "receptive_field",
    "singular_values",
    "summary",
]
