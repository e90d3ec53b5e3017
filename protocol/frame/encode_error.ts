/**
 * The error of the frame encoder and of masking-key packing.
 *
 * @module
 */

import { FdwsError } from "../../errors.ts";

/**
 * Thrown when asked to encode something RFC 6455 does not allow or a buffer cannot hold.
 *
 * `code` is one of:
 * - `"INVALID_OPCODE"`: not a 4-bit opcode, or (for the whole-frame encoders) a reserved one;
 * - `"CONTROL_PAYLOAD_TOO_LARGE"`: a control frame payload over 125 bytes;
 * - `"FRAGMENTED_CONTROL_FRAME"`: a control frame without FIN;
 * - `"INVALID_LENGTH"`: a payload length that is not a non-negative safe integer;
 * - `"INVALID_MASK_KEY"`: a masking key shorter than 4 bytes;
 * - `"INVALID_FRAGMENT_SIZE"`: a fragment size that is not a positive safe integer;
 * - `"BUFFER_TOO_SMALL"`: the target cannot hold the header.
 *
 * @example
 * ```ts
 * import { encodeControlFrame } from "./encoder.ts";
 * import { FrameEncodeError } from "./encode_error.ts";
 *
 * try {
 *   encodeControlFrame(0x9, new Uint8Array(126));
 * } catch (err) {
 *   if (err instanceof FrameEncodeError) console.log(err.code); // "CONTROL_PAYLOAD_TOO_LARGE"
 * }
 * ```
 */
export class FrameEncodeError extends FdwsError {
  /**
   * Creates the error.
   *
   * @param code Stable machine-readable identifier (see the class description).
   * @param message Human-readable description.
   */
  constructor(code: string, message: string) {
    super(code, message);
    this.name = "FrameEncodeError";
  }
}
