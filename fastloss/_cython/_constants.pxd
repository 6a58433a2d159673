"""The tuning constants of fastloss/_constants.py, as setup.py writes them into _constants.h."""

cdef extern from "_constants.h":
    enum:
        BLOCK_ELEMS "FL_BLOCK_ELEMS"
        TILE_ELEMS "FL_TILE_ELEMS"
        TILE_MIN "FL_TILE_MIN"
        STREAM_BYTES "FL_STREAM_BYTES"
        STREAM_ROW_BYTES "FL_STREAM_ROW_BYTES"
        TILE_EXP_GROUP "FL_TILE_EXP_GROUP"
