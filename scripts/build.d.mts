// Types for what scripts/build.mjs exports (it is plain JavaScript: it runs before anything is compiled).
export declare const ROOT: string;
export declare const SERVER_BUNDLE: string;
export declare const CLIENT_INPUTS: string[];
export declare function hashInputs(inputs: string[]): Promise<string>;
export declare function build(options: {
  targets: ('client' | 'server')[];
  ifStale: boolean;
  log?: (line: string) => void;
}): Promise<void>;
