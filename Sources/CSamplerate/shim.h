// libsamplerate (Debian: libsamplerate0-dev, BSD-2-Clause): band-limited sample-rate conversion.
// Used by ConjureData's AudioFile when a target rate differs from a file's rate.
#include <samplerate.h>
