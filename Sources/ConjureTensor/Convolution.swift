import Foundation
import CConjureKernels

// Longer than 400 lines on purpose: im2col/col2im, the forward and both backward passes of conv2d and conv-transpose2d, and their channel helpers are one set of index conventions that must change together.

// MARK: - Geometry

/// The geometry of one 2-D cross-correlation, seen from the convolution's side: an *image*
/// `[n, c, h, w]` is correlated with a kernel `[f, c, kh, kw]` to give *columns*
/// `[n, f, ho, wo]`, with `ho = (h + 2 ph - kh) / sh + 1` (likewise `wo`).
///
/// `conv2d` maps image → columns; `convTranspose2d` is its adjoint and maps columns → image
/// (its input is the convolution's output side, its output the image side).
struct ConvGeometry: Equatable {
    var n: Int, c: Int, h: Int, w: Int
    var f: Int, ho: Int, wo: Int
    var kh: Int, kw: Int
    var sh: Int, sw: Int, ph: Int, pw: Int

    /// The same geometry for the C kernels.
    var kernelGeometry: conjure_conv_geometry {
        conjure_conv_geometry(n: n, c: c, h: h, w: w, ho: ho, wo: wo, kh: kh, kw: kw, sh: sh, sw: sw, ph: ph, pw: pw)
    }
    /// Rows of the unfolded image: one per (channel, kernel row, kernel column).
    var k: Int { c * kh * kw }
    /// Output positions per image.
    var l: Int { ho * wo }
    var imageShape: [Int] { [n, c, h, w] }
    var columnShape: [Int] { [n, f, ho, wo] }
    var weightShape: [Int] { [f, c, kh, kw] }
}

// MARK: - Raw kernels (no autodiff)

/// im2col / col2im and the three GEMM-based convolution products, on raw buffers.
///
/// The unfolded image ("col") is `[k, n * l]`: row `(ci, i, j)`, column `(b, oh, ow)` holds
/// `image[b, ci, oh*sh - ph + i, ow*sw - pw + j]` (0 in the padding), so a chunk of images
/// takes one GEMM (``imagesPerChunk(_:)``). GEMM results in channel-major order `[f, n, l]` are
/// transposed to `[n, f, l]`.
enum ConvKernels {
    /// Splits `0..<count` into at most ``Parallel/threads`` chunks run concurrently when
    /// `work` (elements touched) is large enough to pay for the hand-off.
    @inline(__always)
    static func parallelChunks(_ count: Int, work: Int, _ body: (Range<Int>) -> Void) {
        if work < Parallel.elementwiseSplitCount { body(0..<count); return }
        Parallel.forRanges(count, minimum: 1, alignment: 1, body)
    }

    /// The range of output columns `ow` whose input column `ow*s - p + j` lies in `0..<w`.
    @inline(__always)
    static func validRange(out: Int, size: Int, stride s: Int, pad p: Int, offset j: Int) -> Range<Int> {
        // ow*s - p + j >= 0  <=>  ow >= ceil((p - j) / s)
        let lo = p - j <= 0 ? 0 : (p - j + s - 1) / s
        // ow*s - p + j <= size - 1  <=>  ow <= floor((size - 1 + p - j) / s)
        let top = size - 1 + p - j
        let hi = top < 0 ? 0 : min(out, top / s + 1)
        return lo < hi ? lo..<hi : 0..<0
    }

    /// Calls `body(r, o, p)` for every kernel offset `r = i*kw + j` (in increasing order), output
    /// position `o = oh*wo + ow` and the plane index `p = ih*w + iw` it reads; padding is skipped.
    @inline(__always)
    static func forEachTap(_ g: ConvGeometry, _ body: (_ r: Int, _ o: Int, _ p: Int) -> Void) {
        for i in 0..<g.kh { for j in 0..<g.kw {
            let owRange = validRange(out: g.wo, size: g.w, stride: g.sw, pad: g.pw, offset: j)
            for oh in 0..<g.ho {
                let ih = oh * g.sh - g.ph + i
                if ih < 0 || ih >= g.h { continue }
                for ow in owRange { body(i * g.kw + j, oh * g.wo + ow, ih * g.w + ow * g.sw - g.pw + j) }
            }
        } }
    }

    /// im2col's index table: for kernel offset `r = i*kw + j` and output position
    /// `o = oh*wo + ow`, entry `r*l + o` is the plane index `ih*w + iw` read, or -1 in the padding.
    static func tapTable(_ g: ConvGeometry) -> [Int32] {
        precondition(g.h * g.w < Int(Int32.max), "conv: image plane \(g.h)x\(g.w) is too large")
        var table = [Int32](repeating: -1, count: g.kh * g.kw * g.l)
        forEachTap(g) { r, o, p in table[r * g.l + o] = Int32(p) }
        return table
    }

    /// col2im's gather table: for plane element `p = ih*w + iw`, the offsets `r*n*l + oh*wo + ow`
    /// (from the plane's first column entry) of the entries im2col copied from it, in increasing
    /// `r`, padded with -1 to `taps = ceil(kh/sh) * ceil(kw/sw)` per element.
    static func gatherTable(_ g: ConvGeometry) -> (table: [Int32], taps: Int) {
        let taps = ((g.kh + g.sh - 1) / g.sh) * ((g.kw + g.sw - 1) / g.sw)
        let nl = g.n * g.l
        precondition(g.kh * g.kw * nl < Int(Int32.max), "conv: columns of \(g.n) images of \(g.ho)x\(g.wo) are too large")
        var table = [Int32](repeating: -1, count: g.h * g.w * taps)
        var filled = [Int](repeating: 0, count: g.h * g.w)
        forEachTap(g) { r, o, p in
            table[p * taps + filled[p]] = Int32(r * nl + o)
            filled[p] += 1
        }
        return (table, taps)
    }

    /// Whether the geometry is a 1-D convolution (one-row images and kernels, no height
    /// padding), which the table-free kernels `conjure_im2col_1d` / `conjure_col2im_1d` take.
    static func is1d(_ g: ConvGeometry) -> Bool { g.h == 1 && g.ho == 1 && g.kh == 1 && g.sh == 1 && g.ph == 0 }

    /// Whether the AVX-512 row kernels take this geometry (`conjure_conv_rows_fit`).
    static func rowKernelsApply(_ g: ConvGeometry) -> Bool {
        var cg = g.kernelGeometry
        return conjure_conv_rows_fit(&cg) != 0
    }

    /// A buffer of `count` elements that the caller overwrites in full.
    @inline(__always)
    static func uninitialized(_ count: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { _, initialised in initialised = count }
    }

    /// Runs `body` on ranges of the `c * n` image planes, concurrently when the pass is large.
    @inline(__always)
    static func forPlanes(_ g: ConvGeometry, _ body: (Range<Int>) -> Void) {
        parallelChunks(g.c * g.n, work: g.k * g.n * g.l, body)
    }

    /// Unfolds `image` `[n, c, h, w]` into `col` `[k, n*l]` (a C kernel over image planes, split
    /// across the pool by planes).
    static func im2col(_ image: UnsafePointer<Float>, _ g: ConvGeometry, _ col: UnsafeMutablePointer<Float>) {
        if rowKernelsApply(g) {
            var cg = g.kernelGeometry
            forPlanes(g) { conjure_im2col_rows(image, &cg, col, $0.lowerBound, $0.upperBound) }
            return
        }
        if is1d(g) {
            var cg = g.kernelGeometry
            forPlanes(g) { conjure_im2col_1d(image, &cg, col, $0.lowerBound, $0.upperBound) }
            return
        }
        let taps = tapTable(g)
        taps.withUnsafeBufferPointer { pt in
            forPlanes(g) {
                conjure_im2col_planes(image, g.n, g.c, g.h * g.w, pt.baseAddress!, g.kh * g.kw, g.l, col, $0.lowerBound, $0.upperBound)
            }
        }
    }

    /// Folds `col` `[k, n*l]` back into `image` `[n, c, h, w]`, summing overlaps in increasing
    /// kernel offset (the adjoint of ``im2col(_:_:_:)``). `image` is overwritten; each element is
    /// written once, by one thread.
    static func col2im(_ col: UnsafePointer<Float>, _ g: ConvGeometry, _ image: UnsafeMutablePointer<Float>) {
        if rowKernelsApply(g) {
            var cg = g.kernelGeometry
            forPlanes(g) { conjure_col2im_rows(col, &cg, image, $0.lowerBound, $0.upperBound) }
            return
        }
        if is1d(g) {
            var cg = g.kernelGeometry
            forPlanes(g) { conjure_col2im_1d(col, &cg, image, $0.lowerBound, $0.upperBound) }
            return
        }
        let (table, taps) = gatherTable(g)
        table.withUnsafeBufferPointer { pt in
            forPlanes(g) {
                conjure_col2im_planes(col, g.n, g.c, g.h * g.w, pt.baseAddress!, taps, g.kh * g.kw, g.l, image,
                                      $0.lowerBound, $0.upperBound)
            }
        }
    }

    /// `[n, f, l]` → `[f, n*l]`.
    static func toChannelMajor(_ src: UnsafePointer<Float>, n: Int, f: Int, l: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<n { for c in 0..<f { (dst + (c * n + b) * l).update(from: src + (b * f + c) * l, count: l) } }
    }

    /// `[f, n*l]` → `[n, f, l]`.
    static func fromChannelMajor(_ src: UnsafePointer<Float>, n: Int, f: Int, l: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0..<n { for c in 0..<f { (dst + (b * f + c) * l).update(from: src + (c * n + b) * l, count: l) } }
    }

    /// Images per chunk of a batched product: the unfolded chunk `[k, nb*l]` is kept near 2 MiB,
    /// so the GEMM that reads it (and the im2col/col2im next to it) find it in cache instead of
    /// streaming a whole batch's columns (12.8 MB for a 64→128 k4 s2 layer at 14x14, batch 64)
    /// through memory. Depends on the geometry only, never on the thread count.
    static func imagesPerChunk(_ g: ConvGeometry) -> Int {
        max(1, min(g.n, chunkElements / max(1, g.k * g.l)))
    }

    /// Target size of one chunk's unfolded columns, in elements (2 MiB). Tests lower it to
    /// exercise chunk boundaries.
    nonisolated(unsafe) static var chunkElements = 1 << 19

    /// Runs `body(b0, gc)` on consecutive chunks of images, `gc` being `g` with `n` set to the
    /// chunk's image count and `b0` its first image.
    @inline(__always)
    static func forEachChunk(_ g: ConvGeometry, _ body: (Int, ConvGeometry) -> Void) {
        let per = imagesPerChunk(g)
        var b0 = 0
        while b0 < g.n {
            var gc = g
            gc.n = min(per, g.n - b0)
            body(b0, gc)
            b0 += gc.n
        }
    }

    /// Scratch buffers for one chunk: unfolded columns `[k, nb*l]` and a channel-major
    /// `[f, nb*l]` block.
    @inline(__always)
    static func withChunkScratch<R>(_ g: ConvGeometry,
                                    _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> R) -> R {
        let per = imagesPerChunk(g)
        let col = UnsafeMutablePointer<Float>.allocate(capacity: max(1, g.k * per * g.l))
        let cm = UnsafeMutablePointer<Float>.allocate(capacity: max(1, g.f * per * g.l))
        defer { col.deallocate(); cm.deallocate() }
        return body(col, cm)
    }

    /// `[nb, f, l]` block of `columns` in channel-major order `[f, nb*l]`: `columns` itself when
    /// the chunk is one image, else transposed into `cm`.
    @inline(__always)
    static func channelMajorChunk(_ columns: UnsafePointer<Float>, _ gc: ConvGeometry,
                                  _ cm: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        if gc.n == 1 { return columns }
        toChannelMajor(columns, n: gc.n, f: gc.f, l: gc.l, cm)
        return UnsafePointer(cm)
    }

    /// `out` `[nb, f, l]` = weight `[f, k]` · `col` `[k, nb*l]` (+ bias per `f`), through `cm`.
    @inline(__always)
    static func productChunk(_ col: UnsafePointer<Float>, _ weight: UnsafePointer<Float>, _ bias: [Float]?,
                             _ gc: ConvGeometry, _ cm: UnsafeMutablePointer<Float>, _ out: UnsafeMutablePointer<Float>) {
        let nl = gc.n * gc.l
        let target = gc.n == 1 ? out : cm
        if let bias {
            for c in 0..<gc.f { (target + c * nl).update(repeating: bias[c], count: nl) }
        } else {
            target.update(repeating: 0, count: gc.f * nl)
        }
        if gc.k > 0 {
            sgemm(transposeA: false, transposeB: false, m: gc.f, n: nl, k: gc.k,
                  a: weight, b: col, beta: 1, c: target)
        }
        if gc.n > 1 { fromChannelMajor(cm, n: gc.n, f: gc.f, l: gc.l, out) }
    }

    /// Columns `[n, f, ho, wo]` = weight `[f, k]` · unfold(image) (+ bias per `f`), one chunk of
    /// images (``imagesPerChunk(_:)``) at a time.
    static func forward(image: Tensor, weight: Tensor, bias: [Float]?, _ g: ConvGeometry) -> [Float] {
        let size = g.n * g.f * g.l, imageStride = g.c * g.h * g.w, outStride = g.f * g.l
        if let out = oneDNN(.forward, g, image: image, weight: weight, bias: bias, count: size) {
            return out
        }
        return [Float](unsafeUninitializedCapacity: size) { out, initialised in
            if size > 0 {
                image.withUnsafeScalars { pi in
                    weight.withUnsafeScalars { pw in
                        withChunkScratch(g) { col, cm in
                            forEachChunk(g) { b0, gc in
                                if gc.k > 0 { im2col(pi.baseAddress! + b0 * imageStride, gc, col) }
                                productChunk(col, pw.baseAddress!, bias, gc, cm, out.baseAddress! + b0 * outStride)
                            }
                        }
                    }
                }
            }
            initialised = size
        }
    }

    /// Image `[n, c, h, w]` = fold(weightᵀ · columns) (+ bias per image channel `c`): the
    /// adjoint of ``forward(image:weight:bias:_:)`` in the image, one chunk at a time.
    static func adjoint(columns: Tensor, weight: Tensor, bias: [Float]?, _ g: ConvGeometry) -> [Float] {
        let imageSize = g.n * g.c * g.h * g.w, imageStride = g.c * g.h * g.w, colStride = g.f * g.l
        var out = oneDNN(.backwardData, g, weight: weight, columns: columns, count: imageSize)
            ?? [Float](unsafeUninitializedCapacity: imageSize) { buf, initialised in
            if imageSize > 0 {
                if g.l > 0 && g.k > 0 && g.f > 0 {
                    columns.withUnsafeScalars { pg in
                        weight.withUnsafeScalars { pw in
                            withChunkScratch(g) { col, cm in
                                forEachChunk(g) { b0, gc in
                                    let src = channelMajorChunk(pg.baseAddress! + b0 * colStride, gc, cm)
                                    sgemm(transposeA: true, transposeB: false, m: gc.k, n: gc.n * gc.l, k: gc.f,
                                          a: pw.baseAddress!, b: src, beta: 0, c: col)
                                    col2im(col, gc, buf.baseAddress! + b0 * imageStride)
                                }
                            }
                        }
                    }
                } else {
                    buf.initialize(repeating: 0)
                }
            }
            initialised = imageSize
        }
        if let bias {
            let hw = g.h * g.w
            out.withUnsafeMutableBufferPointer { po in
                for b in 0..<g.n { for c in 0..<g.c {
                    let base = po.baseAddress! + (b * g.c + c) * hw, v = bias[c]
                    for i in 0..<hw { base[i] += v }
                } }
            }
        }
        return out
    }

    /// Weight `[f, k]` = Σ over chunks of columns `[f, nb*l]` · unfold(image chunk)ᵀ: the adjoint
    /// of ``forward(image:weight:bias:_:)`` in the weight. The chunks' products are accumulated in
    /// order, so the result does not depend on the thread count.
    static func weightProduct(image: Tensor, columns: Tensor, _ g: ConvGeometry) -> [Float] {
        backward(image: image, weight: nil, grad: columns, g).weight ?? [Float](repeating: 0, count: g.f * g.k)
    }

    /// Both gradients of `columns = conv(image, weight)` from the gradient `grad` `[n, f, l]` of
    /// the columns, in one pass over the chunks: image ← ``adjoint(columns:weight:bias:_:)`` of
    /// `grad` (when `weight` is given), weight ← ``weightProduct(image:columns:_:)`` (when `image`
    /// is given). Each chunk's channel-major gradient and unfolded columns are made once. With
    /// oneDNN in use each product goes to its primitive, and one it refuses to im2col + GEMM
    /// (`oneDNN: false` asks for that path alone).
    static func backward(image: Tensor?, weight: Tensor?, grad: Tensor, _ g: ConvGeometry, oneDNN tryOneDNN: Bool = true)
        -> (image: [Float]?, weight: [Float]?) {
        let imageSize = g.n * g.c * g.h * g.w, imageStride = g.c * g.h * g.w, colStride = g.f * g.l
        let weightSize = g.f * g.k
        if g.n * g.l == 0 || g.k == 0 || g.f == 0 {
            return (weight == nil ? nil : [Float](repeating: 0, count: imageSize),
                    image == nil ? nil : [Float](repeating: 0, count: weightSize))
        }
        if tryOneDNN && ConvolutionLibrary.usesOneDNN {
            let dx = weight.flatMap { oneDNN(.backwardData, g, weight: $0, columns: grad, count: imageSize) }
            let dw = image.flatMap { oneDNN(.backwardWeights, g, image: $0, columns: grad, count: weightSize) }
            // A product oneDNN refused comes from im2col + GEMM alone; the other stays oneDNN's.
            if (dx == nil) != (weight == nil) || (dw == nil) != (image == nil) {
                let rest = backward(image: dw == nil ? image : nil, weight: dx == nil ? weight : nil, grad: grad, g, oneDNN: false)
                return (dx ?? rest.image, dw ?? rest.weight)
            }
            return (dx, dw)
        }
        // col2im writes every image element, and the first chunk's product (beta 0) every weight.
        var dImage: [Float]? = weight == nil ? nil : uninitialized(imageSize)
        var dWeight: [Float]? = image == nil ? nil : uninitialized(weightSize)
        grad.withUnsafeScalars { pg in
            withChunkScratch(g) { col, cm in
                var first = true
                forEachChunk(g) { b0, gc in
                    let src = channelMajorChunk(pg.baseAddress! + b0 * colStride, gc, cm)
                    let nl = gc.n * gc.l
                    if let image {
                        image.withUnsafeScalars { pi in im2col(pi.baseAddress! + b0 * imageStride, gc, col) }
                        dWeight!.withUnsafeMutableBufferPointer { pd in
                            sgemm(transposeA: false, transposeB: true, m: gc.f, n: gc.k, k: nl,
                                  a: src, b: col, beta: first ? 0 : 1, c: pd.baseAddress!)
                        }
                    }
                    if let weight {
                        weight.withUnsafeScalars { pw in
                            sgemm(transposeA: true, transposeB: false, m: gc.k, n: nl, k: gc.f,
                                  a: pw.baseAddress!, b: src, beta: 0, c: col)
                        }
                        dImage!.withUnsafeMutableBufferPointer { pd in col2im(col, gc, pd.baseAddress! + b0 * imageStride) }
                    }
                    first = false
                }
            }
        }
        return (dImage, dWeight)
    }

    /// Both gradients of `image = adjoint(columns, weight)` (a transposed convolution) from the
    /// image-side gradient `grad` `[n, c, h, w]`: columns ← ``forward(image:weight:bias:_:)`` of
    /// `grad` (when `weight` is given), weight ← ``weightProduct(image:columns:_:)`` of `grad` and
    /// `columns` (when `columns` is given). Each chunk of `grad` is unfolded once for both. With
    /// oneDNN in use each product goes to its primitive, and one it refuses to im2col + GEMM
    /// (`oneDNN: false` asks for that path alone).
    static func adjointBackward(columns: Tensor?, weight: Tensor?, grad: Tensor, _ g: ConvGeometry, oneDNN tryOneDNN: Bool = true)
        -> (columns: [Float]?, weight: [Float]?) {
        let columnsSize = g.n * g.f * g.l, imageStride = g.c * g.h * g.w, colStride = g.f * g.l
        if columnsSize == 0 || g.k == 0 {
            return (weight == nil ? nil : [Float](repeating: 0, count: columnsSize),
                    columns == nil ? nil : [Float](repeating: 0, count: g.f * g.k))
        }
        if tryOneDNN && ConvolutionLibrary.usesOneDNN {
            let dc = weight.flatMap { oneDNN(.forward, g, image: grad, weight: $0, count: columnsSize) }
            let dw = columns.flatMap { oneDNN(.backwardWeights, g, image: grad, columns: $0, count: g.f * g.k) }
            // A product oneDNN refused comes from im2col + GEMM alone; the other stays oneDNN's.
            if (dc == nil) != (weight == nil) || (dw == nil) != (columns == nil) {
                let rest = adjointBackward(columns: dw == nil ? columns : nil, weight: dc == nil ? weight : nil, grad: grad, g, oneDNN: false)
                return (dc ?? rest.columns, dw ?? rest.weight)
            }
            return (dc, dw)
        }
        // Every chunk's product writes its columns, and the first chunk's (beta 0) every weight.
        var dColumns: [Float]? = weight == nil ? nil : uninitialized(columnsSize)
        var dWeight: [Float]? = columns == nil ? nil : uninitialized(g.f * g.k)
        grad.withUnsafeScalars { pg in
            withChunkScratch(g) { col, cm in
                var first = true
                forEachChunk(g) { b0, gc in
                    im2col(pg.baseAddress! + b0 * imageStride, gc, col)
                    if let weight {
                        weight.withUnsafeScalars { pw in
                            dColumns!.withUnsafeMutableBufferPointer { pd in
                                productChunk(col, pw.baseAddress!, nil, gc, cm, pd.baseAddress! + b0 * colStride)
                            }
                        }
                    }
                    if let columns {
                        columns.withUnsafeScalars { pc in
                            let src = channelMajorChunk(pc.baseAddress! + b0 * colStride, gc, cm)
                            dWeight!.withUnsafeMutableBufferPointer { pd in
                                sgemm(transposeA: false, transposeB: true, m: gc.f, n: gc.k, k: gc.n * gc.l,
                                      a: src, b: col, beta: first ? 0 : 1, c: pd.baseAddress!)
                            }
                        }
                    }
                    first = false
                }
            }
        }
        return (dColumns, dWeight)
    }
}

// MARK: - Differentiable convolution primitives

extension Tensor {
    /// Image → columns: `conv(image, weight) + bias`.
    ///
    /// Gradients: image ← ``convAdjoint`` of the upstream gradient, weight ← ``convWeight``,
    /// bias ← per-channel sums. All three are differentiable, so second order works; when no
    /// graph is built, image and weight come from one pass (``ConvKernels/backward``).
    static func convForward(_ image: Tensor, _ weight: Tensor, bias: Tensor?, _ g: ConvGeometry) -> Tensor {
        let out = ConvKernels.forward(image: image, weight: weight, bias: bias?.scalars, g)
        let inputs = bias.map { [image, weight, $0] } ?? [image, weight]
        return record(shape: g.columnShape, scalars: out, inputs: inputs) { grad, t in
            let needImage = t[0].node != nil, needWeight = t[1].node != nil
            var grads: [Tensor?]
            if GradMode.enabled {
                grads = [needImage ? convAdjoint(grad, t[1], bias: nil, g) : nil,
                         needWeight ? convWeight(t[0], grad, g) : nil]
            } else {
                let (dx, dw) = ConvKernels.backward(image: needWeight ? t[0] : nil,
                                                    weight: needImage ? t[1] : nil, grad: grad, g)
                grads = [dx.map { Tensor(shape: g.imageShape, scalars: $0) },
                         dw.map { Tensor(shape: g.weightShape, scalars: $0) }]
            }
            if t.count == 3 { grads.append(t[2].node == nil ? nil : grad.channelSums()) }
            return grads
        }
    }

    /// Columns → image: the adjoint of ``convForward`` in the image (a transposed
    /// convolution), `+ bias` per image channel.
    static func convAdjoint(_ columns: Tensor, _ weight: Tensor, bias: Tensor?, _ g: ConvGeometry) -> Tensor {
        let out = ConvKernels.adjoint(columns: columns, weight: weight, bias: bias?.scalars, g)
        let inputs = bias.map { [columns, weight, $0] } ?? [columns, weight]
        return record(shape: g.imageShape, scalars: out, inputs: inputs) { grad, t in
            // <adjoint(c, w), G> = <c, forward(G, w)> = <w, weight(G, c)>.
            let needColumns = t[0].node != nil, needWeight = t[1].node != nil
            var grads: [Tensor?]
            if GradMode.enabled {
                grads = [needColumns ? convForward(grad, t[1], bias: nil, g) : nil,
                         needWeight ? convWeight(grad, t[0], g) : nil]
            } else {
                let (dc, dw) = ConvKernels.adjointBackward(columns: needWeight ? t[0] : nil,
                                                           weight: needColumns ? t[1] : nil, grad: grad, g)
                grads = [dc.map { Tensor(shape: g.columnShape, scalars: $0) },
                         dw.map { Tensor(shape: g.weightShape, scalars: $0) }]
            }
            if t.count == 3 { grads.append(t[2].node == nil ? nil : grad.channelSums()) }
            return grads
        }
    }

    /// `(image, columns)` → weight: the adjoint of ``convForward`` in the weight
    /// (the weight gradient of a convolution).
    static func convWeight(_ image: Tensor, _ columns: Tensor, _ g: ConvGeometry) -> Tensor {
        let out = ConvKernels.weightProduct(image: image, columns: columns, g)
        return record(shape: g.weightShape, scalars: out, inputs: [image, columns]) { grad, t in
            // <weight(x, c), G> = <forward(x, G), c> = <x, adjoint(c, G)>.
            [t[0].node == nil ? nil : convAdjoint(t[1], grad, bias: nil, g),
             t[1].node == nil ? nil : convForward(t[0], grad, bias: nil, g)]
        }
    }
}

// MARK: - Public convolution ops

extension Tensor {
    /// Output extent of a convolution along one axis: `(size + 2 padding - kernel) / stride + 1`.
    public static func conv2dOutputSize(_ size: Int, kernel: Int, stride: Int, padding: Int) -> Int {
        (size + 2 * padding - kernel) / stride + 1
    }

    /// Output extent of a transposed convolution along one axis:
    /// `(size - 1) stride - 2 padding + kernel + outputPadding`.
    public static func convTranspose2dOutputSize(_ size: Int, kernel: Int, stride: Int, padding: Int,
                                                 outputPadding: Int = 0) -> Int {
        (size - 1) * stride - 2 * padding + kernel + outputPadding
    }

    /// 2-D cross-correlation (PyTorch's `F.conv2d`, dilation 1, groups 1), computed as
    /// im2col + one batched SGEMM.
    ///
    /// - Parameters:
    ///   - x: input images.
    ///   - weight: kernels, PyTorch's layout.
    ///   - bias: one value per output channel, or nil.
    ///   - stride: step in both spatial axes (≥ 1).
    ///   - padding: zeros added on every side (≥ 0).
    /// - Shapes: `x` `[N, Cin, H, W]`, `weight` `[Cout, Cin, kH, kW]`, `bias` `[Cout]` →
    ///   `[N, Cout, Ho, Wo]` with `Ho = (H + 2 padding - kH) / stride + 1` (likewise `Wo`).
    /// - Gradient: input ← `convTranspose2d(g, weight)`, weight ← correlation of `x` with `g`,
    ///   bias ← `g` summed over N, H, W; each is itself differentiable (second order).
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1, padding: Int = 0) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[1],
                     "conv2d: input \(x.shape) ([N, Cin, H, W]) does not match weight \(weight.shape) ([Cout, Cin, kH, kW])")
        precondition(stride >= 1 && padding >= 0, "conv2d: stride \(stride) must be ≥ 1 and padding \(padding) ≥ 0 (input \(x.shape), weight \(weight.shape))")
        if let bias {
            precondition(bias.shape == [weight.shape[0]], "conv2d: bias \(bias.shape) for weight \(weight.shape)")
        }
        let kh = weight.shape[2], kw = weight.shape[3]
        let ho = conv2dOutputSize(x.shape[2], kernel: kh, stride: stride, padding: padding)
        let wo = conv2dOutputSize(x.shape[3], kernel: kw, stride: stride, padding: padding)
        precondition(x.shape[2] + 2 * padding >= kh && x.shape[3] + 2 * padding >= kw && ho >= 1 && wo >= 1,
                     "conv2d: kernel of weight \(weight.shape) is larger than the padded input \(x.shape) (padding \(padding))")
        let g = ConvGeometry(n: x.shape[0], c: x.shape[1], h: x.shape[2], w: x.shape[3],
                             f: weight.shape[0], ho: ho, wo: wo, kh: kh, kw: kw,
                             sh: stride, sw: stride, ph: padding, pw: padding)
        return convForward(x, weight, bias: bias, g)
    }

    /// 2-D transposed convolution (PyTorch's `F.conv_transpose2d`, dilation 1, groups 1): the
    /// gradient of `conv2d` with respect to its input, computed as SGEMM + col2im.
    ///
    /// - Parameters:
    ///   - x: input feature maps.
    ///   - weight: kernels, PyTorch's layout `[Cin, Cout, kH, kW]`.
    ///   - bias: one value per output channel, or nil.
    ///   - stride: step in both spatial axes (≥ 1).
    ///   - padding: rows/columns removed from every side of the full output (≥ 0).
    ///   - outputPadding: extra rows/columns on the bottom/right (`0 ≤ outputPadding < stride`).
    /// - Shapes: `x` `[N, Cin, H, W]`, `weight` `[Cin, Cout, kH, kW]`, `bias` `[Cout]` →
    ///   `[N, Cout, Ho, Wo]` with `Ho = (H - 1) stride - 2 padding + kH + outputPadding`.
    /// - Gradient: input ← `conv2d(g, weight)`, weight ← correlation of `g` with `x`,
    ///   bias ← `g` summed over N, H, W; each is itself differentiable (second order).
    public static func convTranspose2d(_ x: Tensor, weight: Tensor, bias: Tensor? = nil, stride: Int = 1,
                                       padding: Int = 0, outputPadding: Int = 0) -> Tensor {
        precondition(x.rank == 4 && weight.rank == 4 && x.shape[1] == weight.shape[0],
                     "convTranspose2d: input \(x.shape) ([N, Cin, H, W]) does not match weight \(weight.shape) ([Cin, Cout, kH, kW])")
        precondition(stride >= 1 && padding >= 0 && outputPadding >= 0 && outputPadding < stride,
                     "convTranspose2d: need stride ≥ 1, padding ≥ 0, 0 ≤ outputPadding < stride; got stride \(stride), padding \(padding), outputPadding \(outputPadding) (input \(x.shape), weight \(weight.shape))")
        if let bias {
            precondition(bias.shape == [weight.shape[1]], "convTranspose2d: bias \(bias.shape) for weight \(weight.shape)")
        }
        let kh = weight.shape[2], kw = weight.shape[3]
        let hy = convTranspose2dOutputSize(x.shape[2], kernel: kh, stride: stride, padding: padding, outputPadding: outputPadding)
        let wy = convTranspose2dOutputSize(x.shape[3], kernel: kw, stride: stride, padding: padding, outputPadding: outputPadding)
        precondition(hy >= 1 && wy >= 1 && x.shape[2] >= 1 && x.shape[3] >= 1,
                     "convTranspose2d: empty output \([x.shape[0], weight.shape[1], hy, wy]) for input \(x.shape), weight \(weight.shape), padding \(padding)")
        let g = ConvGeometry(n: x.shape[0], c: weight.shape[1], h: hy, w: wy,
                             f: weight.shape[0], ho: x.shape[2], wo: x.shape[3], kh: kh, kw: kw,
                             sh: stride, sw: stride, ph: padding, pw: padding)
        // The conv geometry must map the output back onto the input exactly.
        precondition(conv2dOutputSize(hy, kernel: kh, stride: stride, padding: padding) == x.shape[2]
                     && conv2dOutputSize(wy, kernel: kw, stride: stride, padding: padding) == x.shape[3],
                     "convTranspose2d: inconsistent geometry for input \(x.shape), weight \(weight.shape)")
        return convAdjoint(x, weight, bias: bias, g)
    }
}

// MARK: - Per-channel helpers

extension Tensor {
    /// Sums over every axis except axis 1: `[N, C, ...]` → `[C]` (accumulated in Double).
    ///
    /// - Gradient: the upstream `[C]` broadcast back over N and the trailing axes.
    public func channelSums() -> Tensor {
        precondition(rank >= 2, "channelSums: expected [N, C, ...], got \(shape)")
        let n = shape[0], c = shape[1], inner = shape.dropFirst(2).reduce(1, *)
        var acc = [Double](repeating: 0, count: c)
        withUnsafeScalars { p in
            if let base = p.baseAddress { conjure_channel_sums_f64(base, n, c, inner, &acc) }
        }
        let full = shape
        return Tensor.record(shape: [c], scalars: acc.map { Float($0) }, inputs: [self]) { g, _ in
            [g.broadcastChannels(to: full)]
        }
    }

    /// A `[C]` tensor repeated over `[N, C, ...]` (value `self[c]` at channel `c`).
    ///
    /// - Gradient: ``channelSums()`` of the upstream gradient.
    public func broadcastChannels(to target: [Int]) -> Tensor {
        precondition(rank == 1 && target.count >= 2 && target[1] == shape[0],
                     "broadcastChannels: \(shape) cannot broadcast over channel axis 1 of \(target)")
        let n = target[0], c = target[1], inner = target.dropFirst(2).reduce(1, *)
        let size = n * c * inner, values = scalars
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            for b in 0..<n { for ch in 0..<c {
                (buf.baseAddress! + (b * c + ch) * inner).initialize(repeating: values[ch], count: inner)
            } }
            initialised = size
        }
        return Tensor.record(shape: target, scalars: out, inputs: [self]) { g, _ in [g.channelSums()] }
    }

    /// Per-channel affine map `y[n, c, ...] = x[n, c, ...] * scale[c] + shift[c]` (either may be
    /// nil, meaning 1 and 0).
    ///
    /// - Shapes: `x` `[N, C, ...]`, `scale` and `shift` `[C]` → `[N, C, ...]`.
    /// - Gradient: x ← `channelAffine(g, scale)`, scale ← `channelSums(g * x)`,
    ///   shift ← `channelSums(g)`; differentiable again.
    public static func channelAffine(_ x: Tensor, scale: Tensor?, shift: Tensor?) -> Tensor {
        precondition(x.rank >= 2, "channelAffine: expected [N, C, ...], got \(x.shape)")
        let n = x.shape[0], c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
        if let scale { precondition(scale.shape == [c], "channelAffine: scale \(scale.shape) for input \(x.shape)") }
        if let shift { precondition(shift.shape == [c], "channelAffine: shift \(shift.shape) for input \(x.shape)") }
        let size = x.count, scales = scale?.scalars, shifts = shift?.scalars
        let out = [Float](unsafeUninitializedCapacity: size) { buf, initialised in
            x.withUnsafeScalars { px in
                for b in 0..<n { for ch in 0..<c {
                    let base = (b * c + ch) * inner
                    let s = scales?[ch] ?? 1, t = shifts?[ch] ?? 0
                    for i in 0..<inner { buf[base + i] = px[base + i] * s + t }
                } }
            }
            initialised = size
        }
        var inputs = [x]
        if let scale { inputs.append(scale) }
        if let shift { inputs.append(shift) }
        let hasScale = scale != nil
        return record(shape: x.shape, scalars: out, inputs: inputs) { g, t in
            let s: Tensor? = hasScale ? t[1] : nil
            var grads: [Tensor?] = [t[0].node == nil ? nil : (s == nil ? g : channelAffine(g, scale: s, shift: nil))]
            if hasScale { grads.append(t[1].node == nil ? nil : (g * t[0]).channelSums()) }
            if t.count > (hasScale ? 2 : 1) { grads.append(t[t.count - 1].node == nil ? nil : g.channelSums()) }
            return grads
        }
    }
}

// MARK: - Batch normalisation over [N, C, ...]

extension Tensor {
    /// Batch normalisation in training mode per channel (axis 1) over the batch and every
    /// trailing axis (Ioffe & Szegedy 2015; PyTorch's `BatchNorm2d` in training):
    /// `y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c` with the batch mean and the
    /// biased batch variance, computed in Double.
    ///
    /// - Shapes: `x` `[N, C, ...]` (e.g. `[N, C, H, W]`), `weight`, `bias` `[C]` → `y` like `x`;
    ///   also the batch `mean` and biased `variance` `[C]` (constants) for running statistics.
    /// - Gradient: closed form `dx = invStd (g' - mean(g') - x̂ mean(g' x̂))`, `g' = g·weight`,
    ///   means over the `M = N·H·W` elements of a channel; with `createGraph` the backward is
    ///   built from differentiable ops.
    public static func batchNorm2dTraining(_ x: Tensor, weight: Tensor, bias: Tensor, eps: Float)
        -> (y: Tensor, mean: [Float], variance: [Float]) {
        precondition(x.rank >= 2 && weight.shape == [x.shape[1]] && bias.shape == [x.shape[1]],
                     "batchNorm2dTraining: input \(x.shape) ([N, C, ...]), weight \(weight.shape), bias \(bias.shape)")
        let n = x.shape[0], c = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *)
        let m = n * inner
        precondition(m > 0, "batchNorm2dTraining: empty batch \(x.shape)")
        var mean = [Double](repeating: 0, count: c), variance = [Double](repeating: 0, count: c)
        var invStd = [Double](repeating: 0, count: c)
        var xhat = [Float](unsafeUninitializedCapacity: x.count) { _, initialised in initialised = x.count }
        var y = [Float](unsafeUninitializedCapacity: x.count) { _, initialised in initialised = x.count }
        let weights = weight.scalars.map(Double.init), biases = bias.scalars.map(Double.init)
        x.withUnsafeScalars { p in
            let px = p.baseAddress!
            conjure_channel_sums_f64(px, n, c, inner, &mean)
            for ch in 0..<c { mean[ch] /= Double(m) }
            conjure_channel_sq_dev_f64(px, n, c, inner, mean, &variance)
            for ch in 0..<c { variance[ch] /= Double(m); invStd[ch] = 1 / (variance[ch] + Double(eps)).squareRoot() }
            conjure_bn_normalize(px, n, c, inner, mean, invStd, weights, biases, &xhat, &y)
        }
        let shape = x.shape
        let out = record(shape: shape, scalars: y, inputs: [x, weight, bias]) { g, t in
            if GradMode.enabled {
                // Differentiable recomputation for higher-order gradients.
                let inv = Float(1) / Float(m)
                let mu = t[0].channelSums() * inv
                let centred = channelAffine(t[0], scale: nil, shift: -mu)
                let v = (centred * centred).channelSums() * inv
                let istd = Tensor.ones([c]) / (v + eps).sqrt()
                let xh = channelAffine(centred, scale: istd, shift: nil)
                let gw = channelAffine(g, scale: t[1], shift: nil)
                let m1 = gw.channelSums() * inv, m2 = (gw * xh).channelSums() * inv
                let dx = channelAffine(channelAffine(gw, scale: nil, shift: -m1) - channelAffine(xh, scale: m2, shift: nil),
                                       scale: istd, shift: nil)
                return [t[0].node == nil ? nil : dx,
                        t[1].node == nil ? nil : (g * xh).channelSums(),
                        t[2].node == nil ? nil : g.channelSums()]
            }
            var dw = [Double](repeating: 0, count: c), db = [Double](repeating: 0, count: c)
            g.withUnsafeScalars { gp in conjure_channel_dot_f64(gp.baseAddress!, xhat, n, c, inner, &db, &dw) }
            var dx: Tensor? = nil
            if t[0].node != nil {
                let w = t[1].scalars
                let scale = (0..<c).map { Double(w[$0]) * invStd[$0] }
                let meanG = db.map { $0 / Double(m) }, meanGH = dw.map { $0 / Double(m) }
                var out = [Float](unsafeUninitializedCapacity: g.count) { _, initialised in initialised = g.count }
                g.withUnsafeScalars { gp in
                    conjure_bn_backward_input(gp.baseAddress!, xhat, n, c, inner, scale, meanG, meanGH, &out)
                }
                dx = Tensor(shape: shape, scalars: out)
            }
            return [dx,
                    t[1].node == nil ? nil : Tensor(shape: [c], scalars: dw.map { Float($0) }),
                    t[2].node == nil ? nil : Tensor(shape: [c], scalars: db.map { Float($0) })]
        }
        return (out, mean.map { Float($0) }, variance.map { Float($0) })
    }
}
