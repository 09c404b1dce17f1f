import ConjureNN
import ConjureTensor

// Scoped element pointers to many buffers at once, so one pass over all of a model's
// parameters can be split across the pool (``Parallel/forSegments(_:minimum:_:)``) instead of
// one hand-off per parameter. Each pointer is valid inside `body` only; a buffer with no
// elements gives nil.

/// Calls `body` with a pointer to each parameter's elements, which `body` may mutate in place
/// (through ``Parameter/updateInPlace(_:)``, so every value becomes a new leaf afterwards).
func withParameterPointers(_ parameters: [Parameter], _ body: ([UnsafeMutablePointer<Float>?]) -> Void) {
    var pointers: [UnsafeMutablePointer<Float>?] = []
    pointers.reserveCapacity(parameters.count)
    func hold(_ i: Int) {
        if i == parameters.count { body(pointers); return }
        parameters[i].updateInPlace { p in
            pointers.append(p.baseAddress)
            hold(i + 1)
        }
    }
    hold(0)
}

/// Calls `body` with a pointer to the elements of each array of `arrays`, mutable in place.
func withElementPointers(_ arrays: inout [[Float]], _ body: ([UnsafeMutablePointer<Float>?]) -> Void) {
    arrays.withUnsafeMutableBufferPointer { outer in
        var pointers: [UnsafeMutablePointer<Float>?] = []
        pointers.reserveCapacity(outer.count)
        func hold(_ i: Int) {
            if i == outer.count { body(pointers); return }
            outer[i].withUnsafeMutableBufferPointer { p in
                pointers.append(p.baseAddress)
                hold(i + 1)
            }
        }
        hold(0)
    }
}

/// Calls `body` with a read-only pointer to each tensor's elements.
func withScalarPointers(_ tensors: [Tensor], _ body: ([UnsafePointer<Float>?]) -> Void) {
    var pointers: [UnsafePointer<Float>?] = []
    pointers.reserveCapacity(tensors.count)
    func hold(_ i: Int) {
        if i == tensors.count { body(pointers); return }
        tensors[i].withUnsafeScalars { p in
            pointers.append(p.baseAddress)
            hold(i + 1)
        }
    }
    hold(0)
}
