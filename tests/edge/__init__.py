"""Tests of the edge layer (herald.common.edge) through both edges."""
