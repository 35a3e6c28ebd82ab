import FlexTensor

/// CSV loader: one sample per line, an integer label first, then `dim` numeric features; an optional
/// header line (recognised by a first field that is not an integer); separators `,` (or `;`, tab);
/// empty lines and a trailing newline are ignored; `\r\n` accepted. Every line must have the same
/// number of columns. Errors name the file and line (from 1).
public enum CSVLoader {
    /// Loads `path`. `classes`: labels must be in 0..<classes; nil takes max label + 1.
    public static func load(_ path: String, classes: Int? = nil) throws(DataError) -> Dataset {
        let bytes = try Files.read(path)
        return try parse(bytes.rawBytes, file: path, classes: classes)
    }

    /// Parses CSV text already in memory (`file` names it in errors).
    public static func parse(_ text: UnsafeRawBufferPointer, file: String, classes: Int? = nil) throws(DataError) -> Dataset {
        // pass 1: lines, columns, header
        var lineStarts: [(start: Int, end: Int, number: Int)] = []
        var start = 0, number = 0
        let n = text.count
        while start < n {
            var end = start
            while end < n && text[end] != 10 { end += 1 }
            number += 1
            var e = end
            if e > start && text[e - 1] == 13 { e -= 1 }
            var blank = true
            for i in start..<e where text[i] != 32 && text[i] != 9 { blank = false; break }
            if !blank { lineStarts.append((start, e, number)) }
            start = end + 1
        }
        if lineStarts.isEmpty { throw .malformedLine(file: file, line: 1, message: "no samples") }
        var first = 0
        var fields = [(Int, Int)]()
        split(text, lineStarts[0].start, lineStarts[0].end, into: &fields)
        if parseInt(text, fields[0]) == nil && parseFloat(text, fields[0]) == nil { first = 1 }  // header
        if first == lineStarts.count { throw .malformedLine(file: file, line: lineStarts[0].number, message: "header only, no samples") }
        split(text, lineStarts[first].start, lineStarts[first].end, into: &fields)
        let columns = fields.count
        if columns < 2 {
            throw .malformedLine(file: file, line: lineStarts[first].number, message: "needs a label and at least one feature")
        }
        let dim = columns - 1
        let count = lineStarts.count - first
        var labels = [Int32](repeating: 0, count: count)
        let features = Tensor<Float>(zeros: Shape(rows: count, cols: dim))
        var maxLabel = 0
        for row in 0..<count {
            let line = lineStarts[first + row]
            split(text, line.start, line.end, into: &fields)
            if fields.count != columns {
                throw .malformedLine(file: file, line: line.number,
                                     message: "expected \(columns) columns, found \(fields.count)")
            }
            guard let label = parseInt(text, fields[0]), label >= 0, label < (classes ?? Int(Int32.max)) else {
                throw .badLabel(file: file, line: line.number, value: string(text, fields[0]))
            }
            labels[row] = Int32(label)
            maxLabel = max(maxLabel, label)
            for j in 0..<dim {
                guard let v = parseFloat(text, fields[j + 1]) else {
                    throw .malformedLine(file: file, line: line.number,
                                         message: "column \(j + 2): not a number '\(string(text, fields[j + 1]))'")
                }
                features[row * dim + j] = v
            }
        }
        let out = Dataset(count: count, dim: dim, classes: classes ?? (maxLabel + 1))
        out.features.copy(from: features)
        for i in 0..<count { out.labels[i] = labels[i] }
        return out
    }

    static func split(_ t: UnsafeRawBufferPointer, _ start: Int, _ end: Int, into fields: inout [(Int, Int)]) {
        fields.removeAll(keepingCapacity: true)
        var s = start
        var i = start
        while i <= end {
            if i == end || t[i] == 44 || t[i] == 59 || t[i] == 9 {
                var a = s, b = i
                while a < b && t[a] == 32 { a += 1 }
                while b > a && t[b - 1] == 32 { b -= 1 }
                fields.append((a, b))
                s = i + 1
            }
            i += 1
        }
    }

    static func string(_ t: UnsafeRawBufferPointer, _ f: (Int, Int)) -> String {
        String(decoding: UnsafeRawBufferPointer(rebasing: t[f.0..<f.1]), as: UTF8.self)
    }

    static func parseInt(_ t: UnsafeRawBufferPointer, _ f: (Int, Int)) -> Int? {
        var i = f.0
        var neg = false
        if i < f.1 && (t[i] == 45 || t[i] == 43) { neg = t[i] == 45; i += 1 }
        if i == f.1 || f.1 - i > 9 { return nil }
        var v = 0
        while i < f.1 {
            let c = t[i]
            if c < 48 || c > 57 { return nil }
            v = v * 10 + Int(c - 48)
            i += 1
        }
        return neg ? -v : v
    }

    /// Decimal floating point: [sign] digits [. digits] [e|E [sign] digits]; also nan/inf rejected.
    static func parseFloat(_ t: UnsafeRawBufferPointer, _ f: (Int, Int)) -> Float? {
        var i = f.0
        var neg = false
        if i < f.1 && (t[i] == 45 || t[i] == 43) { neg = t[i] == 45; i += 1 }
        var mantissa = 0.0, digits = 0, scale = 0
        while i < f.1, t[i] >= 48, t[i] <= 57 { mantissa = mantissa * 10 + Double(t[i] - 48); digits += 1; i += 1 }
        if i < f.1 && t[i] == 46 {
            i += 1
            while i < f.1, t[i] >= 48, t[i] <= 57 { mantissa = mantissa * 10 + Double(t[i] - 48); digits += 1; scale -= 1; i += 1 }
        }
        if digits == 0 { return nil }
        if i < f.1 && (t[i] == 101 || t[i] == 69) {
            i += 1
            var eneg = false
            if i < f.1 && (t[i] == 45 || t[i] == 43) { eneg = t[i] == 45; i += 1 }
            var e = 0, ed = 0
            while i < f.1, t[i] >= 48, t[i] <= 57 { e = min(e * 10 + Int(t[i] - 48), 1000); ed += 1; i += 1 }
            if ed == 0 { return nil }
            scale += eneg ? -e : e
        }
        if i != f.1 { return nil }
        let v = scale == 0 ? mantissa : mantissa * FlexMath.pow(10.0, Double(scale))
        return Float(neg ? -v : v)
    }
}
