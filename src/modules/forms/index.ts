export { formApiRoutes, formPageRoutes } from './forms.routes.ts';
export { type Form, getForm, listForms, requireForm } from './forms.service.ts';
