// libsndfile (Debian: libsndfile1-dev, LGPL-2.1-or-later): reading and writing WAV, FLAC and
// other sound files. Used by ConjureData's AudioFile.
#include <sndfile.h>
