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
        guard let value = parseDecimal(number), value >= 0 else { return nil }
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

    /// Parses "12", "0.5", "-3.25" without Foundation. Nil when malformed.
    public static func parseDecimal(_ text: String) -> Double? {
        var result = 0.0
        var fractionScale = 0.0
        var sawDigit = false
        var negative = false
        for (i, ch) in text.enumerated() {
            if ch == "-" && i == 0 { negative = true; continue }
            if ch == "." {
                if fractionScale != 0 { return nil }
                fractionScale = 1
                continue
            }
            guard let digit = ch.wholeNumberValue, ch.isASCII else { return nil }
            sawDigit = true
            if fractionScale == 0 {
                result = result * 10 + Double(digit)
            } else {
                fractionScale /= 10
                result += Double(digit) * fractionScale
            }
        }
        guard sawDigit else { return nil }
        return negative ? -result : result
    }
}
