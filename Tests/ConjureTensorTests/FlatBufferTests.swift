import XCTest
import ConjureTensor

/// Views into a ``FlatBuffer`` keep value semantics: a write through one tensor never shows
/// through another, and a rewrite of the buffer never changes a tensor already handed out.
final class FlatBufferTests: XCTestCase {
    private func filled(_ n: Int) -> FlatBuffer {
        let b = FlatBuffer(count: n)
        for i in 0..<n { b.base[i] = Float(i) }
        return b
    }

    func testViewReadsItsSliceWithoutCopying() {
        let b = filled(10)
        let t = b.view(offset: 3, shape: [2, 2])
        XCTAssertEqual(t.scalars, [3, 4, 5, 6])
        XCTAssertEqual(t.count, 4)
        XCTAssertEqual(t.flatLocation?.offset, 3)
        XCTAssert(t.flatLocation?.buffer === b)
        t.withUnsafeScalars { XCTAssertEqual($0.baseAddress, UnsafePointer(b.base + 3)) }
        // Reshaping and detaching share the slice.
        XCTAssertEqual(t.reshaped([4]).flatLocation?.offset, 3)
        XCTAssertEqual(t.requiringGrad().detached().flatLocation?.offset, 3)
        // An op's result owns its elements.
        XCTAssertNil((t + t).flatLocation)
        XCTAssertEqual((t * Tensor(2)).scalars, [6, 8, 10, 12])
    }

    func testWriteThroughASharedViewCopiesAndLeavesTheBufferAlone() {
        let b = filled(6)
        var t = b.view(offset: 2, shape: [3])
        let u = t  // shares the view
        t.withMutableScalars { $0[0] = 100 }
        XCTAssertEqual(t.scalars, [100, 3, 4])
        XCTAssertNil(t.flatLocation, "a shared view becomes an owned copy when written")
        XCTAssertEqual(u.scalars, [2, 3, 4])
        XCTAssertEqual(b.base[2], 2)
    }

    func testWriteThroughAnUnsharedViewWritesTheBuffer() {
        let b = filled(6)
        var t = b.view(offset: 1, shape: [2])
        t.withMutableScalars { $0[1] = -1 }
        XCTAssertEqual(b.base[2], -1)
        t.withUnsafeMutableScalars { $0[0] = -2 }
        XCTAssertEqual(b.base[1], -2)
        XCTAssertEqual(t.flatLocation?.offset, 1)
    }

    func testInPlaceWriteGivesOtherHoldersTheirOwnCopy() {
        let b = filled(5)
        var t = b.view(offset: 0, shape: [5])
        let held = t
        let heldReshaped = t.reshaped([5, 1])
        t.withUnsafeMutableScalars { p in for i in 0..<p.count { p[i] = 7 } }
        XCTAssertEqual(t.flatLocation?.offset, 0, "the writer stays a view")
        XCTAssertEqual(Array(UnsafeBufferPointer(start: b.base, count: 5)), [7, 7, 7, 7, 7])
        XCTAssertEqual(held.scalars, [0, 1, 2, 3, 4])
        XCTAssertEqual(heldReshaped.scalars, [0, 1, 2, 3, 4])
        XCTAssertNil(held.flatLocation, "a holder given its own copy is no longer in the buffer")
        // Unshared: no copy is made.
        XCTAssertFalse(t.makeViewUnique())
    }

    func testRewriteKeepsHeldViewsAndReusesTheBuffer() {
        let b = FlatBuffer(count: 4)
        let first = b.rewrite(shapes: [[1], [3]], offsets: [0, 1]) { p in for i in 0..<4 { p[i] = Float(i) } }
        XCTAssertEqual(first.map(\.scalars), [[0], [1, 2, 3]])
        let second = b.rewrite(shapes: [[1], [3]], offsets: [0, 1]) { p in for i in 0..<4 { p[i] = 10 + Float(i) } }
        XCTAssertEqual(second.map(\.scalars), [[10], [11, 12, 13]])
        XCTAssertEqual(first.map(\.scalars), [[0], [1, 2, 3]], "views handed out before keep their values")
        XCTAssertNotNil(Tensor.contiguousElements(second))
        XCTAssertNil(Tensor.contiguousElements(first))
        XCTAssertNil(Tensor.contiguousElements([second[1], second[0]]), "out of order")
    }

    func testGradientsReachAViewLeaf() {
        let b = filled(4)
        let w = b.view(offset: 1, shape: [3]).requiringGrad()
        let loss = (w * w).sum()
        let g = Tensor.gradients(of: loss, wrt: [w])[0]
        XCTAssertEqual(g.scalars, [2, 4, 6])
    }
}
