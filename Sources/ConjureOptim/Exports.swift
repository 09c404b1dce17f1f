@_exported import ConjureTensor
