// s3.*: S3 locations do not exist yet, so there is nothing of vdfs to measure. The names are
// emitted with null values and a note rather than a made-up number.
import { unavailable, type Result } from './lib';

export function s3Bench(): Result[] {
  const note = 'S3 locations are not implemented in vdfs yet (no s3:// provider); not measured';
  return [
    unavailable('s3.seqread.cold', 'MB/s', 'higher', note, ['aws-sdk']),
    unavailable('s3.ttfb', 'ms', 'lower', note, ['aws-sdk']),
  ];
}
