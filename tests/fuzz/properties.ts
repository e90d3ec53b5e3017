/**
 * Every fuzz property, in the order the short and the long run execute them.
 *
 * @module
 */

import { FRAME_PROPERTIES } from "./frame_properties.ts";
import { REQUEST_PROPERTIES } from "./http_request_properties.ts";
import { RESPONSE_PROPERTIES } from "./http_response_properties.ts";
import type { FuzzProperty } from "./property.ts";

/** All properties; names are unique. */
export const ALL_PROPERTIES: readonly FuzzProperty[] = [
  ...FRAME_PROPERTIES,
  ...REQUEST_PROPERTIES,
  ...RESPONSE_PROPERTIES,
];
