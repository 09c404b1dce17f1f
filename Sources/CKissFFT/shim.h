// KissFFT (Debian: libkissfft-dev, BSD-3-Clause), the float build (libkissfft-float):
// real-input FFT for ConjureData's Spectrogram. kiss_fft_scalar is float unless defined otherwise.
#include <kissfft/kiss_fftr.h>
