import CoreML
import CoreVideo
import Foundation

/// Zero-filled inputs built from a model's description: what the timing loop feeds the model.
public enum ZeroInputs {
    /// Values for required scalar inputs of a detection pipeline (CONVENTIONS §3 defaults);
    /// zero thresholds would make NMS keep every box and time a case no app runs.
    public static let scalarDefaults: [String: Double] = ["iouThreshold": 0.45, "confidenceThreshold": 0.25]

    /// One value per required input; optional inputs are left out so the model's defaults apply.
    public static func features(for description: MLModelDescription) throws -> MLFeatureProvider {
        var values: [String: MLFeatureValue] = [:]
        for (name, feature) in description.inputDescriptionsByName where !feature.isOptional {
            values[name] = try value(named: name, for: feature)
        }
        return try MLDictionaryFeatureProvider(dictionary: values)
    }

    static func value(named name: String, for feature: MLFeatureDescription) throws -> MLFeatureValue {
        switch feature.type {
        case .multiArray:
            guard let constraint = feature.multiArrayConstraint else {
                throw BenchError.unsupportedInput(name: name, reason: "multiArray without a shape")
            }
            // For a flexible shape, `shape` is the model's default shape.
            let shape = constraint.shape.map(\.intValue)
            return MLFeatureValue(multiArray: try multiArray(named: name, shape: shape, dataType: constraint.dataType))
        case .image:
            guard let constraint = feature.imageConstraint else {
                throw BenchError.unsupportedInput(name: name, reason: "image without a size")
            }
            return MLFeatureValue(pixelBuffer: try pixelBuffer(
                named: name, width: constraint.pixelsWide, height: constraint.pixelsHigh,
                format: constraint.pixelFormatType))
        case .double:
            return MLFeatureValue(double: scalarDefaults[name] ?? 0)
        case .int64:
            return MLFeatureValue(int64: 0)
        case .string:
            return MLFeatureValue(string: "")
        default:
            throw BenchError.unsupportedInput(name: name, reason: "feature type \(feature.type.rawValue) is not supported")
        }
    }

    static func multiArray(named name: String, shape: [Int], dataType: MLMultiArrayDataType) throws -> MLMultiArray {
        guard !shape.isEmpty, shape.allSatisfy({ $0 > 0 }) else {
            throw BenchError.unsupportedInput(name: name, reason: "multiArray shape \(shape) has no fixed default")
        }
        let size = try elementSize(named: name, dataType)
        // Strides of a contiguous row-major array, in elements.
        var strides = [Int](repeating: 1, count: shape.count)
        for axis in stride(from: shape.count - 2, through: 0, by: -1) {
            strides[axis] = strides[axis + 1] * shape[axis + 1]
        }
        // calloc, so the memory is zero by contract; MLMultiArray(shape:dataType:) does not promise it.
        guard let memory = calloc(shape.reduce(1, *), size) else {
            throw BenchError.inputAllocation(name: name, reason: "cannot allocate \(shape)")
        }
        do {
            return try MLMultiArray(dataPointer: memory, shape: shape.map { NSNumber(value: $0) },
                                    dataType: dataType, strides: strides.map { NSNumber(value: $0) },
                                    deallocator: { free($0) })
        } catch {
            free(memory)
            throw error
        }
    }

    static func elementSize(named name: String, _ dataType: MLMultiArrayDataType) throws -> Int {
        switch dataType {
        case .double: return 8
        case .float32, .int32: return 4
        default:
            if #available(macOS 13, iOS 16, *), dataType == .float16 { return 2 }
            throw BenchError.unsupportedInput(name: name, reason: "multiArray data type \(dataType.rawValue) is not supported")
        }
    }

    static func pixelBuffer(named name: String, width: Int, height: Int, format: OSType) throws -> CVPixelBuffer {
        // IOSurface backing lets the GPU and Neural Engine read the buffer without a copy, as a
        // camera frame would be read.
        let attributes = [kCVPixelBufferIOSurfacePropertiesKey as String: [String: Any]()] as CFDictionary
        var created: CVPixelBuffer?
        let status = CVPixelBufferCreate(kCFAllocatorDefault, width, height, format, attributes, &created)
        guard status == kCVReturnSuccess, let buffer = created else {
            throw BenchError.inputAllocation(name: name, reason: "CVPixelBufferCreate \(width)x\(height) failed (\(status))")
        }
        CVPixelBufferLockBaseAddress(buffer, [])
        defer { CVPixelBufferUnlockBaseAddress(buffer, []) }
        if CVPixelBufferIsPlanar(buffer) {
            for plane in 0..<CVPixelBufferGetPlaneCount(buffer) {
                if let base = CVPixelBufferGetBaseAddressOfPlane(buffer, plane) {
                    memset(base, 0, CVPixelBufferGetBytesPerRowOfPlane(buffer, plane) * CVPixelBufferGetHeightOfPlane(buffer, plane))
                }
            }
        } else if let base = CVPixelBufferGetBaseAddress(buffer) {
            memset(base, 0, CVPixelBufferGetBytesPerRow(buffer) * height)
        }
        return buffer
    }
}
