# The C kernels (mask.c, utf8.c), declared for core.pyx only: kept out of core.pxd so that
# users who cimport core.pxd do not need our headers on their include path.

from libc.stdint cimport uint32_t


cdef extern from "mask.h":
    void femtows_mask_inplace(unsigned char *data, size_t length, uint32_t key) nogil
    void femtows_mask_copy(unsigned char *dst, const unsigned char *src, size_t length,
                           uint32_t key) nogil
    const char *femtows_mask_impl() nogil


cdef extern from "utf8.h":
    uint32_t FEMTOWS_UTF8_ACCEPT
    uint32_t FEMTOWS_UTF8_REJECT
    uint32_t femtows_utf8_validate(uint32_t state, const unsigned char *data,
                                   size_t length) nogil
