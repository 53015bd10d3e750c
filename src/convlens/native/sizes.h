/* sizes.h: the sizes of one 2-D convolution, as the caller fills them once per spec
 * (native/__init__.py's ConvSizes mirrors this struct field for field). direct.c and im2col.c
 * take them. */
#ifndef CONVLENS_SIZES_H
#define CONVLENS_SIZES_H

#include <stdint.h>

typedef struct {
    int64_t batch, in_channels, out_channels, groups, height, width, kernel_h, kernel_w;
    int64_t stride_h, stride_w, pad_top, pad_left, dilation_h, dilation_w, out_h, out_w;
    int64_t channels_last; /* 1: x and out are channels-last (direct.c: depthwise, multiplier 1, only) */
} Sizes;

#endif
