/// Number formatting that works the same in Embedded Swift (which cannot print floating-point
/// values through `description`) and on the host.
public enum Format {
    /// `value` with a fixed number of decimals, e.g. fixed(3.14159, 2) == "3.14".
    public static func fixed(_ value: Double, _ decimals: Int) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let negative = value < 0
        let magnitude = (abs(value) * scale).rounded()
        if magnitude >= 9.0e18 { return negative ? "-huge" : "huge" }
        let scaled = UInt64(magnitude)
        let factor = UInt64(scale)
        var text = String(scaled / factor)
        if decimals > 0 {
            var fraction = String(scaled % factor)
            while fraction.count < decimals { fraction = "0" + fraction }
            text += "." + fraction
        }
        return negative && scaled != 0 ? "-" + text : text
    }

    public static func fixed(_ value: Float, _ decimals: Int) -> String { fixed(Double(value), decimals) }

    /// A byte count with a binary unit, e.g. "1.50 MiB".
    public static func bytes(_ count: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(count)
        var unit = 0
        while abs(value) >= 1024 && unit < units.count - 1 {
            value /= 1024
            unit += 1
        }
        return unit == 0 ? "\(count) B" : fixed(value, 2) + " " + units[unit]
    }

    /// Parses a size such as "48MiB", "512M", "1.5GiB", "4096" (bytes). Nil when malformed.
    public static func parseBytes(_ text: String) -> Int? {
        var number = ""
        var unit = ""
        for ch in text {
            if unit.isEmpty && (ch.isNumber || ch == ".") { number.append(ch) } else { unit.append(ch) }
        }
        guard let value = parseReal(number), value >= 0 else { return nil }
        let multiplier: Double
        switch unit.lowercased() {
        case "", "b": multiplier = 1
        case "k", "kb", "kib": multiplier = 1024
        case "m", "mb", "mib": multiplier = 1024 * 1024
        case "g", "gb", "gib": multiplier = 1024 * 1024 * 1024
        default: return nil
        }
        let bytes = value * multiplier
        return bytes < 9.0e18 ? Int(bytes) : nil
    }

    /// A real as the protocol writes it: `significant` significant digits, trailing zeros dropped;
    /// plain decimals for 1e-5 ≤ |x| < 1e9 ("0.02", "12.5"), else scientific ("1.5e-07").
    /// Read back by `parseReal`. Non-finite values give "nan", "inf", "-inf" (which `parseReal` refuses).
    public static func real(_ value: Double, significant: Int = 9) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        if value == 0 { return "0" }
        let negative = value < 0
        var m = abs(value), exponent = 0
        while m >= 10 { m /= 10; exponent += 1 }
        while m < 1 { m *= 10; exponent -= 1 }
        var scale: UInt64 = 1
        for _ in 1..<significant { scale *= 10 }
        var digits = UInt64((m * Double(scale)).rounded())
        if digits >= scale * 10 { digits /= 10; exponent += 1 }
        var text = String(digits)  // `significant` digits, the first before the point
        var body: String
        if exponent >= -5 && exponent < 9 {
            if exponent >= 0 {
                let whole = exponent + 1
                let fraction = String(text.dropFirst(whole))
                body = String(text.prefix(whole)) + (fraction.isEmpty ? "" : "." + fraction)
            } else {
                body = "0." + String(repeating: "0", count: -exponent - 1) + text
            }
            if body.contains(".") {
                while body.hasSuffix("0") { body.removeLast() }
                if body.hasSuffix(".") { body.removeLast() }
            }
        } else {
            while text.count > 1 && text.hasSuffix("0") { text.removeLast() }
            body = String(text.prefix(1)) + (text.count > 1 ? "." + String(text.dropFirst()) : "")
            let e = abs(exponent)
            body += (exponent < 0 ? "e-" : "e+") + (e < 10 ? "0" : "") + String(e)
        }
        return negative ? "-" + body : body
    }

    /// Decimal integer with optional sign; nil on anything else or overflow.
    public static func parseInt(_ text: String) -> Int? {
        var value = 0
        var negative = false
        var digits = 0
        for (i, c) in text.utf8.enumerated() {
            if i == 0 && (c == UInt8(ascii: "-") || c == UInt8(ascii: "+")) { negative = c == UInt8(ascii: "-"); continue }
            guard c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") else { return nil }
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(Int(c - UInt8(ascii: "0")))
            if o1 || o2 { return nil }
            value = a
            digits += 1
        }
        return digits > 0 ? (negative ? -value : value) : nil
    }

    /// Decimal real: [-+]digits[.digits][e[-+]digits], without Foundation; nil on anything else.
    public static func parseReal(_ text: String) -> Double? {
        var mantissa = 0.0, scale = 0, exponent = 0
        var negative = false, exponentNegative = false
        var state = 0  // 0 integer part, 1 fraction, 2 exponent
        var digits = 0, exponentDigits = 0
        for (i, c) in text.utf8.enumerated() {
            switch c {
            case UInt8(ascii: "-"), UInt8(ascii: "+"):
                if i == 0 { negative = c == UInt8(ascii: "-") }
                else if state == 2 && exponentDigits == 0 { exponentNegative = c == UInt8(ascii: "-") }
                else { return nil }
            case UInt8(ascii: "."):
                if state != 0 { return nil }
                state = 1
            case UInt8(ascii: "e"), UInt8(ascii: "E"):
                if state == 2 || digits == 0 { return nil }
                state = 2
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                let d = Int(c - UInt8(ascii: "0"))
                if state == 2 {
                    exponent = min(exponent * 10 + d, 1000)
                    exponentDigits += 1
                } else {
                    mantissa = mantissa * 10 + Double(d)
                    if state == 1 { scale += 1 }
                    digits += 1
                }
            default:
                return nil
            }
        }
        if digits == 0 || (state == 2 && exponentDigits == 0) { return nil }
        var power = (exponentNegative ? -exponent : exponent) - scale
        var value = mantissa
        while power > 0 { value *= 10; power -= 1 }
        while power < 0 { value /= 10; power += 1 }
        return negative ? -value : value
    }
}
