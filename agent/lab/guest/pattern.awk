# The data-area pattern: `awk -v seed=N -v size=BYTES -f pattern.awk`
# prints BYTES (a multiple of 64 KiB) of deterministic pseudo-random text.
# agent/lab/image.py:data_pattern() computes the same bytes on the host;
# tests/unit/test_image_pattern.py keeps the two in step.
#
# base: 17408 MINSTD words (x = x * 48271 mod 2^31-1, exact in doubles),
# each printed as 8 hex digits.  Chunk c (64 KiB) is base from offset
# c * 277: 277 is odd, so no two 4 KiB blocks of the area are equal.
BEGIN {
    x = seed % 2147483646 + 1
    base = ""
    for (piece = 0; piece < 34; piece++) {
        # 4 KiB pieces: appending to one long string would be quadratic.
        s = ""
        for (w = 0; w < 512; w++) {
            x = (x * 48271) % 2147483647
            s = s sprintf("%08x", x)
        }
        base = base s
    }
    for (c = 0; c < size / 65536; c++)
        printf "%s", substr(base, c * 277 + 1, 65536)
}
