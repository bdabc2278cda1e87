// Loading an edgetailor bundle's model.mlpackage with Vision on iOS and reading its results.
//
// NOT COMPILED HERE: edgetailor is developed on Linux, which has no Swift toolchain for Apple's
// frameworks (Core ML and Vision exist only on Apple platforms). This file sits outside
// Sources/, so the EdgetailorBench package does not build it; tests/bundle/test_samples.py checks
// that the names below are the ones bundles hold.
//
// Add the bundle's model.mlpackage to the app target: Xcode compiles it to model.mlmodelc in the
// app bundle (and generates a `model` class, not used here). Copy manifest.json too if the app
// wants the thresholds; the Core ML model carries the same ones as its defaults.
// iOS 15+ (the bundles are ML Programs).
import CoreML
import Foundation
import Vision

public struct Scored {
    public let label: String
    public let score: Float
}

public struct Detected {
    public let box: CGRect  // in the image's pixels, origin top-left (Vision's is bottom-left, normalised)
    public let label: String
    public let score: Float
}

public enum BundleError: Error {
    case missingModel(String)
    case noResult
}

/// One bundle's Core ML model in Vision. Create once, reuse for every image.
public final class EdgetailorBundle {
    public let model: MLModel
    private let vision: VNCoreMLModel

    /// `name`: the compiled model in the app bundle ("model" for model.mlpackage).
    public init(compiledModelNamed name: String = "model",
                computeUnits: MLComputeUnits = .all) throws {
        guard let url = Bundle.main.url(forResource: name, withExtension: "mlmodelc") else {
            throw BundleError.missingModel(name)
        }
        let configuration = MLModelConfiguration()
        configuration.computeUnits = computeUnits
        model = try MLModel(contentsOf: url, configuration: configuration)
        vision = try VNCoreMLModel(for: model)
    }

    /// The labels the bundle's models were built with: manifest "labels" = labels.txt = these.
    /// Classifiers carry them as class labels; detectors and segmenters also as JSON in the
    /// model's user-defined metadata under "labels".
    public var labels: [String] {
        let metadata = model.modelDescription.metadata[.creatorDefinedKey] as? [String: String]
        guard let json = metadata?["labels"]?.data(using: .utf8),
              let labels = try? JSONDecoder().decode([String].self, from: json) else {
            return model.modelDescription.classLabels as? [String] ?? []
        }
        return labels
    }

    /// Detection only: override the bundle's NMS thresholds (both optional model inputs; left
    /// out, the model applies the manifest's "iou_threshold" and "score_threshold").
    public func setThresholds(iou: Double, confidence: Double) throws {
        vision.featureProvider = try MLDictionaryFeatureProvider(dictionary: [
            "iouThreshold": MLFeatureValue(double: iou),
            "confidenceThreshold": MLFeatureValue(double: confidence),
        ])
    }

    private func perform(_ image: CGImage, orientation: CGImagePropertyOrientation) throws -> [VNObservation] {
        let request = VNCoreMLRequest(model: vision)
        // The whole image squeezed to the model's input size, as MediaPipe and the Task Library do
        // (Vision's default crops the centre square).
        request.imageCropAndScaleOption = .scaleFill
        try VNImageRequestHandler(cgImage: image, orientation: orientation).perform([request])
        return request.results ?? []
    }

    /// Classification bundle: the top classes (VNClassificationObservation, best first).
    public func classify(_ image: CGImage, orientation: CGImagePropertyOrientation = .up, top: Int = 3) throws -> [Scored] {
        let results = try perform(image, orientation: orientation) as? [VNClassificationObservation] ?? []
        return results.prefix(top).map { Scored(label: $0.identifier, score: $0.confidence) }
    }

    /// Detection bundle: at most the manifest's max_detections boxes (VNRecognizedObjectObservation),
    /// each with its best label.
    public func detect(_ image: CGImage, orientation: CGImagePropertyOrientation = .up) throws -> [Detected] {
        let results = try perform(image, orientation: orientation) as? [VNRecognizedObjectObservation] ?? []
        return results.compactMap { object in
            guard let best = object.labels.first else { return nil }
            var box = VNImageRectForNormalizedRect(object.boundingBox, image.width, image.height)
            box.origin.y = CGFloat(image.height) - box.maxY  // bottom-left -> top-left origin
            return Detected(box: box, label: best.identifier, score: best.confidence)
        }
    }

    /// Segmentation bundle: the "mask" output, an Int32 MLMultiArray [1, R, R] of class indices
    /// (0 = labels[0], the background) at the model's resolution R; "probabilities" [1, R, R,
    /// classes] holds the per-class scores.
    public func segment(_ image: CGImage, orientation: CGImagePropertyOrientation = .up) throws -> MLMultiArray {
        let results = try perform(image, orientation: orientation) as? [VNCoreMLFeatureValueObservation] ?? []
        guard let mask = results.first(where: { $0.featureName == "mask" })?.featureValue.multiArrayValue else {
            throw BundleError.noResult
        }
        return mask
    }
}
