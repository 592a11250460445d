export {
  type CampaignCondition,
  type ConsentCondition,
  type FieldCondition,
  type Filter,
  validateFilter,
} from './segments.filter.ts';
export { segmentRoutes } from './segments.routes.ts';
export {
  checkFilter,
  countSegment,
  getSegment,
  listSegmentContacts,
  listSegments,
  previewSegment,
  type Segment,
  segmentScope,
} from './segments.service.ts';
export { type SegmentScope, segmentWhere } from './segments.sql.ts';
